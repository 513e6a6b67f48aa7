// avatar-client.js: render a text with the avatar pipeline's HTTP API and play it on any
// <canvas>, mouth, eyes and captions driven by the audio clock. Copy this file and face.js
// into your app (plain ES modules, no dependencies):
//
//   import { AvatarClient, AvatarPlayer } from './avatar-client.js';
//   const client = new AvatarClient({ baseUrl: 'http://localhost:8080' });
//   const player = new AvatarPlayer(document.querySelector('canvas'),
//                                   { captions: document.querySelector('#captions') });
//
//   // Streaming: speech starts after the first sentence (or clause) is rendered, the rest
//   // follows segment by segment, back to back on one Web Audio clock.
//   const stream = client.stream({ viseme_set: 'basic' });
//   const done = player.playStream(stream);
//   stream.type('Hello! Words arrive one by one, as from a chat model.'); // or write()/end()
//   await done;
//
//   // Live: a microphone lip-synced as it speaks, the mouth a fixed lag behind.
//   const live = client.live({ viseme_set: 'basic' });
//   const finished = player.playLive(live);
//   await live.capture(await navigator.mediaDevices.getUserMedia({ audio: true }));
//   // ... live.end() when the speaker is done; `finished` resolves with `done`.
//
//   // One render: the whole text first, then one audio file.
//   const request = { text: 'Hello!', viseme_set: 'basic' };
//   const result = await client.render(request);
//   await player.play(result, { text: request.text });
//
// The modules behind it, in client/: api.js (AvatarClient), streams.js (AvatarStream,
// AvatarEventStream, AvatarLive), captions.js (the caption rules and Captions), player.js
// (AvatarPlayer), errors.js (ApiError).

export { ApiError } from './client/errors.js';
export { Captions, captionAt, captionPieces, sentenceAt, wordAt } from './client/captions.js';
export { AvatarClient } from './client/api.js';
export { AvatarEventStream, AvatarLive, AvatarStream, typedWords } from './client/streams.js';
export { AvatarPlayer, activeCue } from './client/player.js';
