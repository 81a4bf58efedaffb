// ANSI SGR escapes (colours, bold…) to DOM spans; every other escape
// sequence (cursor movement, titles and links: OSC, device controls) and
// control character is dropped, as core/ansi does for the CLI.

// ESC matches an escape sequence or a control character; m[2] is the
// final byte of a CSI sequence (m for SGR).
const ESC = /\x1b(?:\[([0-9;:?<=>]*)[ -\/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[ -\/]*[0-~]?)|[\x00-\x08\x0b-\x1f\x7f]/g;

// crop keeps what follows the last carriage return that has text after
// it, as a terminal would show (progress bars).
function crop(line) {
  if (line.indexOf('\r') < 0) return line;
  const parts = line.split('\r');
  let out = parts[0];
  for (const p of parts.slice(1)) if (p.replace(ESC, '').length) out = p;
  return out;
}

function rgb256(n) {
  if (n < 16) return null;
  if (n >= 232) { const g = 8 + (n - 232) * 10; return `rgb(${g},${g},${g})`; }
  n -= 16;
  const c = (x) => (x ? 55 + x * 40 : 0);
  return `rgb(${c(Math.floor(n / 36))},${c(Math.floor(n / 6) % 6)},${c(n % 6)})`;
}

function apply(st, params) {
  const p = params.length ? params : [0];
  for (let i = 0; i < p.length; i++) {
    const n = p[i];
    if (n === 0) { st.fg = st.bg = null; st.b = st.d = st.i = st.u = false; }
    else if (n === 1) st.b = true;
    else if (n === 2) st.d = true;
    else if (n === 3) st.i = true;
    else if (n === 4) st.u = true;
    else if (n === 22) st.b = st.d = false;
    else if (n === 23) st.i = false;
    else if (n === 24) st.u = false;
    else if (n >= 30 && n <= 37) st.fg = n - 30;
    else if (n >= 90 && n <= 97) st.fg = n - 90 + 8;
    else if (n === 39) st.fg = null;
    else if (n >= 40 && n <= 47) st.bg = n - 40;
    else if (n >= 100 && n <= 107) st.bg = n - 100 + 8;
    else if (n === 49) st.bg = null;
    else if (n === 38 || n === 48) {
      let colour = null;
      if (p[i + 1] === 5) { const c = p[i + 2]; colour = c < 16 ? c : rgb256(c); i += 2; }
      else if (p[i + 1] === 2) { colour = `rgb(${p[i + 2] | 0},${p[i + 3] | 0},${p[i + 4] | 0})`; i += 4; }
      if (n === 38) st.fg = colour; else st.bg = colour;
    }
  }
}

function piece(text, st) {
  const plain = st.fg === null && st.bg === null && !st.b && !st.d && !st.i && !st.u;
  if (plain) return document.createTextNode(text);
  const el = document.createElement('span');
  const cls = [];
  if (st.b) cls.push('a-b');
  if (st.d) cls.push('a-d');
  if (st.i) cls.push('a-i');
  if (st.u) cls.push('a-u');
  if (typeof st.fg === 'number') cls.push('a-f' + st.fg); else if (st.fg) el.style.color = st.fg;
  if (typeof st.bg === 'number') cls.push('a-b' + st.bg); else if (st.bg) el.style.backgroundColor = st.bg;
  el.className = cls.join(' ');
  el.textContent = text;
  return el;
}

// render appends the line's text to el, coloured.
export function render(el, line) {
  line = crop(line);
  if (!/[\x00-\x08\x0b-\x1f\x7f]/.test(line)) { el.textContent = line; return; }
  const st = { fg: null, bg: null, b: false, d: false, i: false, u: false };
  let last = 0;
  ESC.lastIndex = 0;
  let m;
  while ((m = ESC.exec(line))) {
    if (m.index > last) el.append(piece(line.slice(last, m.index), st));
    if (m[2] === 'm') apply(st, (m[1] || '').split(/[;:]/).filter((x) => x !== '').map(Number));
    last = ESC.lastIndex;
  }
  if (last < line.length) el.append(piece(line.slice(last), st));
}

// strip returns the text without escapes (for search).
export function strip(line) {
  line = crop(line);
  return /[\x00-\x08\x0b-\x1f\x7f]/.test(line) ? line.replace(ESC, '') : line;
}
