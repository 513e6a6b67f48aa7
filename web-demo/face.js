// The avatar's face: mouth shapes for the three viseme sets, the animation state at any
// moment of a render (pure functions of the audio time), and drawing it on a 2-D canvas.
// No dependencies, no build step: an ES module the browser loads as is.

/** Mouth parameters, each 0..1: jaw opening, lip spread, lip rounding, upper teeth shown,
 *  tongue shown. */
const REST = { open: 0.03, width: 0.5, round: 0.1, teeth: 0, tongue: 0 };
const shape = (open, width, round, teeth = 0, tongue = 0) => ({ open, width, round, teeth, tongue });

/** Every viseme of every set (docs/offline.md: Viseme sets). */
export const VISEME_SHAPES = {
  basic: {
    REST,
    AA: shape(0.85, 0.55, 0.1, 0.35, 0.25),
    EE: shape(0.3, 0.95, 0, 0.85),
    OH: shape(0.6, 0.35, 0.75, 0.15),
    OO: shape(0.22, 0.18, 1),
    FF: shape(0.1, 0.55, 0.05, 1),
    TH: shape(0.25, 0.55, 0.05, 0.5, 1),
  },
  rhubarb: {
    X: REST,
    A: shape(0, 0.5, 0.1),
    B: shape(0.14, 0.7, 0, 1),
    C: shape(0.5, 0.65, 0.05, 0.45, 0.2),
    D: shape(0.95, 0.6, 0.05, 0.35, 0.3),
    E: shape(0.45, 0.4, 0.5, 0.2),
    F: shape(0.2, 0.2, 1),
    G: shape(0.1, 0.55, 0.05, 1),
    H: shape(0.4, 0.55, 0.05, 0.3, 1),
  },
  oculus: {
    sil: REST,
    PP: shape(0, 0.5, 0.1),
    FF: shape(0.1, 0.55, 0.05, 1),
    TH: shape(0.25, 0.55, 0.05, 0.5, 1),
    DD: shape(0.25, 0.6, 0.05, 0.6, 0.3),
    kk: shape(0.35, 0.55, 0.05, 0.3, 0.2),
    CH: shape(0.3, 0.35, 0.5, 0.7),
    SS: shape(0.12, 0.8, 0, 1),
    nn: shape(0.2, 0.55, 0.05, 0.3, 0.5),
    RR: shape(0.3, 0.35, 0.6, 0.2),
    aa: shape(0.9, 0.6, 0.05, 0.35, 0.25),
    E: shape(0.5, 0.75, 0, 0.6),
    ih: shape(0.3, 0.85, 0, 0.7),
    oh: shape(0.6, 0.35, 0.75, 0.15),
    ou: shape(0.22, 0.18, 1),
  },
};

const KEYS = ['open', 'width', 'round', 'teeth', 'tongue'];
const mix = (a, b, f) => Object.fromEntries(KEYS.map((k) => [k, a[k] + (b[k] - a[k]) * f]));
const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
/** Smooth start and end: the mouth eases into each shape. */
export const easeInOut = (x) => (x < 0.5 ? 4 * x * x * x : 1 - Math.pow(-2 * x + 2, 3) / 2);

/** The shape a cue asks for: its viseme, formed as far as its weight says. */
export function cueTarget(set, cue) {
  const shapes = VISEME_SHAPES[set] || VISEME_SHAPES.basic;
  const viseme = shapes[cue.viseme] || REST;
  return mix(REST, viseme, clamp(cue.weight ?? 1, 0, 1));
}

/**
 * Index of the last of `items` starting at or before `t` ms, or -1: the cue active at `t`.
 * `items` is anything sorted by `t_ms` (mouth cues, word and sentence marks); it is the one
 * "what is on at time t" lookup of the face and the captions alike.
 */
export function activeCue(items, t) {
  let lo = 0;
  let hi = items.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (items[mid].t_ms <= t) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** Longest transition between two shapes, and its share of a short cue. */
const TRANSITION_MS = 80;
const TRANSITION_SHARE = 0.6;

/**
 * The mouth at audio time `t` ms: moving from the previous cue's shape to the active cue's
 * over min(80 ms, 60 % of the cue) with easing, then holding. A transition always ends
 * before the next cue starts, so the shape at a cue's start is exactly the previous target
 * and nothing snaps.
 */
export function mouthAt(cues, set, t) {
  const i = activeCue(cues, t);
  if (i < 0) return { cueIndex: -1, viseme: null, weight: 0, mouth: { ...REST }, blend: 1 };
  const cue = cues[i];
  const to = cueTarget(set, cue);
  const from = i > 0 ? cueTarget(set, cues[i - 1]) : REST;
  const length = i + 1 < cues.length ? cues[i + 1].t_ms - cue.t_ms : Infinity;
  const span = Math.max(1, Math.min(TRANSITION_MS, length * TRANSITION_SHARE));
  const blend = easeInOut(clamp((t - cue.t_ms) / span, 0, 1));
  return { cueIndex: i, viseme: cue.viseme, weight: cue.weight, mouth: mix(from, to, blend), blend };
}

const DIRECTIONS = {
  left: [-1, 0], right: [1, 0], up: [0, -1], down: [0, 1],
  up_left: [-0.7, -0.7], up_right: [0.7, -0.7], down_left: [-0.7, 0.7], down_right: [0.7, 0.7],
};

/**
 * The eyes at audio time `t` ms: lid closure 0..1 (a blink closes and reopens over its
 * duration) and gaze offset -1..1 (a saccade moves in its direction within the first 20 %
 * of its duration, holds, and returns in the last 20 %).
 */
export function eyesAt(events, t) {
  let lid = 0;
  let gaze = { x: 0, y: 0 };
  let blinking = null;
  for (const e of events) {
    if (t < e.t_ms || t > e.t_ms + e.duration_ms) continue;
    const p = (t - e.t_ms) / Math.max(1, e.duration_ms);
    if (e.event_type === 'blink') {
      lid = Math.max(lid, Math.sin(Math.PI * p));
      blinking = e;
    } else if (e.event_type === 'saccade') {
      const [dx, dy] = DIRECTIONS[e.direction] || [0, 0];
      const reach = p < 0.2 ? easeInOut(p / 0.2) : p > 0.8 ? easeInOut((1 - p) / 0.2) : 1;
      gaze = { x: dx * reach, y: dy * reach };
    }
  }
  return { lid, gaze, blinking };
}

/** Breathing: a slow rise and fall of the head, at every moment, speaking or not. */
export function breathAt(clockMs) {
  return Math.sin((2 * Math.PI * clockMs) / 4200);
}

const SKIN = '#f2c6a0';
const SKIN_SHADE = '#dea27c';
const HAIR = '#4a3328';
const LIP = '#b8474f';
const MOUTH = '#4a1520';
const TONGUE = '#d9676f';
const IRIS = '#3c6e91';

/**
 * Draws the face for `state` = { mouth, lid, gaze, breath } on the whole canvas. `sprite`,
 * if given, is { image, alpha, from: {image, alpha} }: mouth images drawn instead of the
 * drawn mouth, cross-faded.
 */
export function drawFace(ctx, state, sprite = null) {
  const { width: W, height: H } = ctx.canvas;
  const s = Math.min(W, H) / 480;
  ctx.save();
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = '#e8eef3';
  ctx.fillRect(0, 0, W, H);
  ctx.translate(W / 2, H / 2 + state.breath * 3 * s);
  ctx.scale(s * (1 + state.breath * 0.004), s * (1 - state.breath * 0.004));

  // Neck and shoulders.
  ctx.fillStyle = SKIN_SHADE;
  ctx.fillRect(-45, 120, 90, 90);
  ctx.fillStyle = '#5b7fa3';
  ctx.beginPath();
  ctx.ellipse(0, 250, 190, 70, 0, Math.PI, 0);
  ctx.fill();
  // Ears.
  ctx.fillStyle = SKIN_SHADE;
  for (const side of [-1, 1]) {
    ctx.beginPath();
    ctx.ellipse(side * 128, 10, 22, 38, 0, 0, 2 * Math.PI);
    ctx.fill();
  }
  // Head.
  ctx.fillStyle = SKIN;
  ctx.beginPath();
  ctx.ellipse(0, 0, 130, 160, 0, 0, 2 * Math.PI);
  ctx.fill();
  // Hair.
  ctx.fillStyle = HAIR;
  ctx.beginPath();
  ctx.ellipse(0, -105, 135, 70, 0, Math.PI, 2 * Math.PI);
  ctx.quadraticCurveTo(90, -120, 0, -110);
  ctx.quadraticCurveTo(-90, -120, -135, -105);
  ctx.fill();

  drawEyes(ctx, state);
  // Nose.
  ctx.strokeStyle = SKIN_SHADE;
  ctx.lineWidth = 4;
  ctx.beginPath();
  ctx.moveTo(0, 10);
  ctx.quadraticCurveTo(-12, 45, 4, 52);
  ctx.stroke();

  if (sprite && sprite.image) {
    drawMouthSprite(ctx, sprite);
  } else {
    drawMouth(ctx, state.mouth);
  }
  ctx.restore();
}

/** The mouth's box on a 480 x 480 canvas: where sprites go and what tests sample. */
export const MOUTH_BOX = { x: 240 - 70, y: 240 + 70, w: 140, h: 90 };
/** The left eye's box on a 480 x 480 canvas. */
export const LEFT_EYE_BOX = { x: 240 - 48 - 26, y: 240 - 35 - 18, w: 52, h: 36 };

function drawEyes(ctx, { lid, gaze, mouth }) {
  const lift = mouth.open * 6 - gaze.y * 4;
  for (const side of [-1, 1]) {
    const cx = side * 48;
    const cy = -35;
    // Brow, lifting a little with an open mouth or an upward glance.
    ctx.strokeStyle = HAIR;
    ctx.lineWidth = 7;
    ctx.lineCap = 'round';
    ctx.beginPath();
    ctx.moveTo(cx - 24, cy - 32 - lift);
    ctx.quadraticCurveTo(cx, cy - 42 - lift, cx + 24, cy - 30 - lift);
    ctx.stroke();
    // White, iris and pupil, clipped to the eye.
    ctx.save();
    ctx.beginPath();
    ctx.ellipse(cx, cy, 26, 17, 0, 0, 2 * Math.PI);
    ctx.fillStyle = '#ffffff';
    ctx.fill();
    ctx.clip();
    const px = cx + gaze.x * 11;
    const py = cy + gaze.y * 6;
    ctx.fillStyle = IRIS;
    ctx.beginPath();
    ctx.arc(px, py, 11, 0, 2 * Math.PI);
    ctx.fill();
    ctx.fillStyle = '#111111';
    ctx.beginPath();
    ctx.arc(px, py, 5, 0, 2 * Math.PI);
    ctx.fill();
    ctx.fillStyle = 'rgba(255,255,255,0.8)';
    ctx.beginPath();
    ctx.arc(px + 3, py - 3, 2, 0, 2 * Math.PI);
    ctx.fill();
    // Upper lid coming down (and the lower one a little up) over the eye.
    const closed = clamp(lid, 0, 1);
    ctx.fillStyle = SKIN;
    ctx.fillRect(cx - 30, cy - 20, 60, 3 + closed * 36);
    ctx.fillRect(cx - 30, cy + 20 - closed * 6, 60, 8);
    ctx.restore();
    // Lash line along the lid's edge.
    ctx.strokeStyle = '#2b1d16';
    ctx.lineWidth = 3;
    ctx.beginPath();
    if (closed > 0.9) {
      ctx.moveTo(cx - 26, cy + 2);
      ctx.quadraticCurveTo(cx, cy + 10, cx + 26, cy + 2);
    } else {
      ctx.ellipse(cx, cy, 26, 17, 0, Math.PI, 2 * Math.PI);
    }
    ctx.stroke();
  }
}

function drawMouth(ctx, m) {
  const cx = 0;
  const cy = 112;
  const halfWidth = 22 + 38 * m.width * (1 - 0.45 * m.round);
  const gap = 3 + 46 * m.open;
  const corner = 4 + 10 * m.round;
  const top = cy - gap * 0.35;
  const bottom = cy + gap * 0.65;
  const path = new Path2D();
  path.moveTo(cx - halfWidth, cy);
  path.bezierCurveTo(cx - halfWidth + corner, top - gap * 0.3, cx + halfWidth - corner, top - gap * 0.3, cx + halfWidth, cy);
  path.bezierCurveTo(cx + halfWidth - corner, bottom + gap * 0.25, cx - halfWidth + corner, bottom + gap * 0.25, cx - halfWidth, cy);
  path.closePath();
  if (m.open > 0.04) {
    ctx.fillStyle = MOUTH;
    ctx.fill(path);
    ctx.save();
    ctx.clip(path);
    if (m.tongue > 0.05) {
      ctx.fillStyle = TONGUE;
      ctx.beginPath();
      ctx.ellipse(cx, bottom - gap * 0.1 - m.tongue * gap * 0.25, halfWidth * 0.6, gap * 0.35 + m.tongue * 4, 0, 0, 2 * Math.PI);
      ctx.fill();
    }
    if (m.teeth > 0.05) {
      ctx.fillStyle = '#fbfaf5';
      ctx.fillRect(cx - halfWidth, top - gap, halfWidth * 2, gap * 0.55 + m.teeth * 6);
    }
    ctx.restore();
  }
  // Lips: thicker when rounded, a line when closed.
  ctx.strokeStyle = LIP;
  ctx.lineWidth = 6 + 5 * m.round;
  ctx.lineJoin = 'round';
  ctx.stroke(path);
  if (m.open <= 0.04) {
    ctx.strokeStyle = '#7a2a30';
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(cx - halfWidth + 4, cy);
    ctx.quadraticCurveTo(cx, cy + 3, cx + halfWidth - 4, cy);
    ctx.stroke();
  }
}

function drawMouthSprite(ctx, sprite) {
  const box = { x: -70, y: 70, w: 140, h: 90 };
  const draw = (image, alpha) => {
    if (!image) return;
    ctx.globalAlpha = alpha;
    ctx.drawImage(image, box.x, box.y, box.w, box.h);
  };
  if (sprite.from) draw(sprite.from.image, 1 - sprite.alpha);
  draw(sprite.image, sprite.from ? sprite.alpha : 1);
  ctx.globalAlpha = 1;
}
