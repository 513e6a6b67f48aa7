import { activeCue } from '../face.js';

// Captions. A completed result carries `words: [{t_ms, end_ms, text, start, end}]` (each
// written word of the request's text, when it is heard, and where it is in the text in UTF-16
// code units: `text.slice(start, end) === text`) and `sentences: [{t_ms, end_ms, start, end}]`.
// The rules, all functions of the audio time `t` in ms (the same clock as the mouth):
//
// - The word spoken at `t` is the word whose mark covers it: `t_ms <= t < end_ms`. Between
//   two words (a pause at a comma or between sentences), before the first and after the last,
//   no word is highlighted: the highlight shows what is being heard, as the mouth does.
// - The sentence shown at `t` is the last one started at or before `t`, kept through the
//   pause after it; before the first is heard, the first. If the word spoken at `t` lies in
//   another sentence (marks that disagree), that sentence is shown instead, so the spoken
//   word is always on screen. Without sentence marks the caption is the whole text.
// - Paused, the captions stay on the paused moment (like a video's subtitles) while the
//   mouth rests; `stop()` clears them.

/** Index of the word mark covering `t` ms (`t_ms <= t < end_ms`), or -1 between words. */
export function wordAt(words, t) {
  const i = activeCue(words, t);
  return i >= 0 && t < words[i].end_ms ? i : -1;
}

/** Index of the sentence to show at `t` ms: the last started, else the first; -1 if none. */
export function sentenceAt(sentences, t) {
  return sentences.length ? Math.max(0, activeCue(sentences, t)) : -1;
}

const within = (word, sentence) => word.start >= sentence.start && word.end <= sentence.end;

/** What the captions of `result` show at `t` ms: `{ word, sentence }` indices (-1: none). */
export function captionAt(result, t) {
  const words = result?.words ?? [];
  const sentences = result?.sentences ?? [];
  const word = wordAt(words, t);
  let sentence = sentenceAt(sentences, t);
  if (word >= 0 && sentence >= 0 && !within(words[word], sentences[sentence])) {
    const containing = sentences.findIndex((s) => within(words[word], s));
    if (containing >= 0) sentence = containing;
  }
  return { word, sentence };
}

/**
 * The pieces of `text` from `start` to `end`: `[{ text, word }]`, each word mark inside the
 * range a piece of its own (`word`: its index) and the text between words pieces with
 * `word: -1`, whitespace at both ends trimmed. Concatenated, they are the range's text.
 */
export function captionPieces(text, words, { start = 0, end = text.length } = {}) {
  const pieces = [];
  let at = start;
  words.forEach((w, i) => {
    if (w.start < at || w.end > end || w.end <= w.start) return;
    if (w.start > at) pieces.push({ text: text.slice(at, w.start), word: -1 });
    pieces.push({ text: text.slice(w.start, w.end), word: i });
    at = w.end;
  });
  if (at < end) pieces.push({ text: text.slice(at, end), word: -1 });
  if (pieces[0]?.word === -1) pieces[0].text = pieces[0].text.trimStart();
  const last = pieces[pieces.length - 1];
  if (last?.word === -1) last.text = last.text.trimEnd();
  return pieces.filter((p) => p.text !== '');
}

/** Marks placed in a text made of the words themselves, one space apart (no text given). */
function joinedWords(words, sentences) {
  let text = '';
  const placed = words.map((w) => {
    if (text) text += ' ';
    const start = text.length;
    text += w.text;
    return { ...w, start, end: text.length };
  });
  const moved = sentences.map((s) => {
    const inside = words.flatMap((w, i) => (within(w, s) ? [i] : []));
    return inside.length
      ? { ...s, start: placed[inside[0]].start, end: placed[inside[inside.length - 1]].end }
      : { ...s, start: 0, end: 0 };
  });
  return { text, words: placed, sentences: moved };
}

/**
 * Captions in an element of the page: the sentence being spoken, each word a
 * `<span class="word" data-word="i">`, the text between words kept as text nodes (all
 * through `textContent`-safe DOM calls: no markup is ever parsed from the text), the word
 * being spoken with the class `speaking` and `aria-current="true"`. `AvatarPlayer` drives
 * it from its frame loop when given a `captions` element.
 */
export class Captions {
  constructor(element) {
    this.element = element;
    this.clear();
  }

  /**
   * Takes a render's marks and `text`, the request's text they index. Without a text (or
   * one the marks do not fit) the caption is the words themselves, one space apart.
   */
  load(result, text) {
    this.update(result, text);
    this.element.replaceChildren();
  }

  /**
   * Takes marks and text grown since `load` (a stream's next segment): the element keeps
   * what it shows until the next `show` redraws it from the new marks, so nothing blinks.
   */
  update(result, text) {
    const words = result?.words ?? [];
    const sentences = result?.sentences ?? [];
    const fits = typeof text === 'string' && words.every((w) => text.slice(w.start, w.end) === w.text);
    ({ text: this.text, words: this.words, sentences: this.sentences } = fits
      ? { text, words, sentences }
      : joinedWords(words, sentences));
    this.shown = null; // the sentence whose words are in the element (-1: the whole text)
    this.spoken = -1; // the highlighted word
    this.spans = new Map();
  }

  clear() {
    this.load(null, '');
  }

  /** Shows sentence `sentence` (-1: the whole text) with word `word` highlighted (-1: none). */
  show(sentence, word) {
    if (sentence !== this.shown) {
      const range = sentence >= 0 ? this.sentences[sentence] : { start: 0, end: this.text.length };
      this.spans = new Map();
      this.element.replaceChildren(...captionPieces(this.text, this.words, range).map((piece) => {
        if (piece.word < 0) return document.createTextNode(piece.text);
        const span = document.createElement('span');
        span.className = 'word';
        span.dataset.word = String(piece.word);
        span.textContent = piece.text;
        this.spans.set(piece.word, span);
        return span;
      }));
      this.shown = sentence;
      this.spoken = -1;
    }
    if (word === this.spoken) return;
    const before = this.spans.get(this.spoken);
    before?.classList.remove('speaking');
    before?.removeAttribute('aria-current');
    const span = this.spans.get(word);
    span?.classList.add('speaking');
    span?.setAttribute('aria-current', 'true');
    this.spoken = word;
    if (span) this.#keepInView(span);
  }

  /** A long caption scrolls inside its box (never the page) to keep the spoken word shown. */
  #keepInView(span) {
    const box = this.element;
    if (box.scrollHeight <= box.clientHeight) return;
    const top = span.getBoundingClientRect().top - box.getBoundingClientRect().top - box.clientTop + box.scrollTop;
    if (top < box.scrollTop || top + span.offsetHeight > box.scrollTop + box.clientHeight) {
      box.scrollTop = Math.max(0, top - box.clientHeight / 3);
    }
  }
}
