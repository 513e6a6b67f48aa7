// The browser client's pure helpers, without a browser: `node --test web-demo/client/test/`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { captionAt, captionPieces, sentenceAt, wordAt } from '../captions.js';
import { applyLive, typedWords } from '../streams.js';

const text = 'Hello there. How are you?';
const words = [
  { text: 'Hello', t_ms: 0, end_ms: 300, start: 0, end: 5 },
  { text: 'there', t_ms: 300, end_ms: 600, start: 6, end: 11 },
  { text: 'How', t_ms: 900, end_ms: 1100, start: 13, end: 16 },
  { text: 'are', t_ms: 1100, end_ms: 1250, start: 17, end: 20 },
  { text: 'you', t_ms: 1250, end_ms: 1500, start: 21, end: 24 },
];
const sentences = [
  { t_ms: 0, end_ms: 600, start: 0, end: 12 },
  { t_ms: 900, end_ms: 1500, start: 13, end: 25 },
];

test('the word covering a time, and none between words', () => {
  assert.equal(wordAt(words, 0), 0);
  assert.equal(wordAt(words, 299), 0);
  assert.equal(wordAt(words, 300), 1);
  assert.equal(wordAt(words, 700), -1, 'the pause between sentences');
  assert.equal(wordAt(words, 1500), -1, 'after the last word');
  assert.equal(wordAt([], 10), -1);
});

test('the sentence shown: the last started, the first before any, kept through its pause', () => {
  assert.equal(sentenceAt(sentences, -5), 0);
  assert.equal(sentenceAt(sentences, 700), 0);
  assert.equal(sentenceAt(sentences, 900), 1);
  assert.equal(sentenceAt([], 900), -1);
  assert.deepEqual(captionAt({ words, sentences }, 1200), { word: 3, sentence: 1 });
  assert.deepEqual(captionAt(null, 10), { word: -1, sentence: -1 });
  // Marks that disagree: the sentence holding the spoken word is shown.
  const early = [{ ...sentences[0] }, { ...sentences[1], t_ms: 2000 }];
  assert.deepEqual(captionAt({ words, sentences: early }, 1200), { word: 3, sentence: 1 });
});

test('caption pieces tile the range, words apart, ends trimmed', () => {
  const pieces = captionPieces(text, words, { start: 13, end: 25 });
  assert.equal(pieces.map((p) => p.text).join(''), 'How are you?');
  assert.deepEqual(pieces.filter((p) => p.word >= 0).map((p) => p.word), [2, 3, 4]);
  assert.deepEqual(captionPieces('  Hi  ', [{ start: 2, end: 4 }]), [{ text: 'Hi', word: 0 }]);
});

test('typed words keep every character, the space before each word with it', () => {
  const typed = typedWords('Hello  big\nworld! ');
  assert.equal(typed.join(''), 'Hello  big\nworld! ');
  assert.deepEqual(typed, ['Hello', '  big', '\nworld!', ' ']);
  assert.deepEqual(typedWords(''), []);
});

test('live cues are appended in windows, corrections replace their utterance', () => {
  const timeline = { mouth_cues: [], words: [] };
  const cue = (t_ms, viseme) => ({ t_ms, viseme, weight: 1 });
  applyLive(timeline, { type: 'cues', from_ms: 0, to_ms: 100, mouth_cues: [cue(0, 'X')] });
  applyLive(timeline, { type: 'cues', from_ms: 100, to_ms: 200, mouth_cues: [cue(100, 'B'), cue(150, 'C')] });
  applyLive(timeline, { type: 'cues', from_ms: 200, to_ms: 300, mouth_cues: [cue(200, 'X')] });
  assert.deepEqual(timeline.mouth_cues.map((c) => c.t_ms), [0, 100, 150, 200]);
  // The utterance 100-200 heard again: its cues replaced, what came after kept.
  applyLive(timeline, {
    type: 'correction', from_ms: 100, to_ms: 200, aligned: true, text: 'Hi',
    mouth_cues: [cue(100, 'A'), cue(120, 'D')], words: [{ text: 'Hi', t_ms: 100, end_ms: 190, start: 0, end: 2 }],
  });
  assert.deepEqual(timeline.mouth_cues.map((c) => [c.t_ms, c.viseme]), [[0, 'X'], [100, 'A'], [120, 'D'], [200, 'X']]);
  assert.deepEqual(timeline.words.map((w) => [w.text, w.utterance]), [['Hi', 'Hi']]);
  // A window restating its start replaces what was drawn from there on.
  applyLive(timeline, { type: 'cues', from_ms: 200, to_ms: 300, mouth_cues: [cue(200, 'E')] });
  assert.deepEqual(timeline.mouth_cues.at(-1), cue(200, 'E'));
  assert.equal(timeline.mouth_cues.length, 4);
  applyLive(timeline, { type: 'done', duration_ms: 300, utterances: 1 });
  assert.equal(timeline.mouth_cues.length, 4);
});
