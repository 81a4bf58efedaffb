// A log viewer that keeps only the visible lines in the DOM, so a log of a
// hundred thousand lines scrolls as lightly as one of ten. Lines have a fixed
// height; a spacer gives the scrollbar the full length.

import { h, clear } from './dom.js';
import { render as renderANSI, strip } from './ansi.js';

const ROW = 20; // px, as .log .line in style.css
const OVERSCAN = 20;

export class LogView {
  constructor() {
    this.nums = []; // line numbers, ascending
    this.texts = [];
    this.streams = []; // 0 stdout, 1 stderr, 2 system
    this.notes = new Map(); // index → note shown before the line (gaps)
    this.follow = true;
    this.hits = [];
    this.hitSet = new Set();
    this.cur = -1;
    this.needle = '';
    this.target = targetFromHash();
    this.frame = 0;

    this.count = h('span', { class: 'note', dataset: { testid: 'log-count' } }, '0 lines');
    this.state = h('span', { class: 'note' });
    this.followBox = h('input', { type: 'checkbox', checked: true, onchange: () => { this.follow = this.followBox.checked; if (this.follow) this.toEnd(); } });
    this.search = h('input', { type: 'search', placeholder: 'Search the log (Enter: next)', 'aria-label': 'search log', oninput: () => this.debounceSearch(), onkeydown: (e) => {
      if (e.key === 'Enter') { e.preventDefault(); this.step(e.shiftKey ? -1 : 1); }
    } });
    this.hitLabel = h('span', { class: 'note', dataset: { testid: 'log-hits' } });
    this.rows = h('div', { class: 'rows' });
    this.spacer = h('div', { class: 'spacer' }, this.rows);
    this.scroller = h('div', { class: 'log', tabindex: 0, dataset: { testid: 'log' }, onscroll: () => this.onScroll() }, this.spacer);
    this.el = h('div', {},
      h('div', { class: 'logbar' },
        this.search, h('button', { type: 'button', onclick: () => this.step(-1), title: 'previous match' }, '↑'),
        h('button', { type: 'button', onclick: () => this.step(1), title: 'next match' }, '↓'), this.hitLabel,
        h('span', { class: 'spacer' }),
        this.state, this.count,
        h('label', {}, this.followBox, ' follow'),
        h('button', { type: 'button', onclick: () => { this.setFollow(false); this.scroller.scrollTop = 0; } }, 'Top'),
        h('button', { type: 'button', onclick: () => { this.setFollow(true); this.toEnd(); } }, 'End')),
      this.scroller);
    this.onHash = () => { this.target = targetFromHash(); this.goTarget(); };
    window.addEventListener('hashchange', this.onHash);
    this.ro = new ResizeObserver(() => this.schedule());
    this.ro.observe(this.scroller);
  }

  destroy() {
    window.removeEventListener('hashchange', this.onHash);
    this.ro.disconnect();
    cancelAnimationFrame(this.frame);
  }

  reset() {
    this.nums = []; this.texts = []; this.streams = []; this.notes.clear();
    this.hits = []; this.hitSet.clear(); this.cur = -1;
    this.setFollow(true);
    this.update();
  }

  setState(text) { this.state.textContent = text; }

  setFollow(on) { this.follow = on; this.followBox.checked = on; }

  // append adds LogChunks as the API sends them.
  append(chunks) {
    const start = this.texts.length;
    for (const c of chunks) {
      const n = Number(c.line_number);
      if (this.nums.length && n <= this.nums[this.nums.length - 1]) continue; // seen
      this.nums.push(n);
      this.texts.push(c.content || '');
      this.streams.push(c.stream === 'LOG_STREAM_STDERR' ? 1 : c.stream === 'LOG_STREAM_SYSTEM' ? 2 : 0);
    }
    if (this.needle) {
      for (let i = start; i < this.texts.length; i++) {
        if (strip(this.texts[i]).toLowerCase().includes(this.needle)) { this.hits.push(i); this.hitSet.add(i); }
      }
      this.showHits();
    }
    this.update();
    if (this.target && this.target !== this.targetShown && this.indexOf(this.target) >= 0) this.goTarget();
  }

  gap(from, to) {
    this.notes.set(this.texts.length, `lines ${from}–${to} were skipped (reading too slowly); reload to see them`);
    this.update();
  }

  update() {
    this.count.textContent = `${this.texts.length.toLocaleString()} lines`;
    this.scroller.dataset.lines = String(this.texts.length);
    this.spacer.style.height = `${this.texts.length * ROW}px`;
    if (this.follow) this.toEnd();
    this.schedule();
  }

  toEnd() { this.scroller.scrollTop = this.scroller.scrollHeight; this.schedule(); }

  onScroll() {
    const sc = this.scroller;
    const atEnd = sc.scrollTop + sc.clientHeight >= sc.scrollHeight - ROW;
    if (this.follow !== atEnd) this.setFollow(atEnd);
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  draw() {
    const sc = this.scroller;
    const first = Math.max(0, Math.floor(sc.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(this.texts.length, Math.ceil((sc.scrollTop + sc.clientHeight) / ROW) + OVERSCAN);
    this.rows.style.transform = `translateY(${first * ROW}px)`;
    clear(this.rows);
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) frag.append(this.row(i));
    this.rows.append(frag);
  }

  row(i) {
    const n = this.nums[i];
    const cls = ['line'];
    if (this.streams[i] === 1) cls.push('stderr');
    if (this.streams[i] === 2) cls.push('system');
    if (this.hitSet.has(i)) cls.push(i === this.hits[this.cur] ? 'cur' : 'hit');
    if (n === this.target) cls.push('target');
    const txt = h('span', { class: 'txt' });
    if (this.notes.has(i)) txt.append(h('span', { class: 'gap' }, `⋯ ${this.notes.get(i)} ⋯ `));
    if (this.streams[i] === 1) txt.append(h('span', { class: 'tag', title: 'stderr' }, 'ERR'));
    const body = h('span');
    renderANSI(body, this.texts[i]);
    txt.append(body);
    return h('div', { class: cls.join(' '), id: `L${n}`, dataset: { line: n } },
      h('a', { class: 'ln', href: `#L${n}` }, n), txt);
  }

  indexOf(n) {
    let lo = 0, hi = this.nums.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.nums[mid] === n) return mid;
      if (this.nums[mid] < n) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
  }

  // scrollTo puts line index i in the middle of the view.
  scrollToIndex(i) {
    this.setFollow(false);
    const sc = this.scroller;
    sc.scrollTop = Math.max(0, i * ROW - sc.clientHeight / 2);
    this.schedule();
  }

  goTarget() {
    if (!this.target) { this.schedule(); return; }
    const i = this.indexOf(this.target);
    if (i >= 0) { this.scrollToIndex(i); this.targetShown = this.target; }
  }

  debounceSearch() {
    clearTimeout(this.searchTimer);
    this.searchTimer = setTimeout(() => this.runSearch(), 150);
  }

  runSearch() {
    this.needle = this.search.value.trim().toLowerCase();
    this.hits = []; this.hitSet.clear(); this.cur = -1;
    if (this.needle) {
      for (let i = 0; i < this.texts.length; i++) {
        if (strip(this.texts[i]).toLowerCase().includes(this.needle)) { this.hits.push(i); this.hitSet.add(i); }
      }
      if (this.hits.length) { this.cur = 0; this.scrollToIndex(this.hits[0]); }
    }
    this.showHits();
    this.schedule();
  }

  step(dir) {
    if (this.search.value.trim().toLowerCase() !== this.needle) this.runSearch();
    if (!this.hits.length) return;
    this.cur = (this.cur + dir + this.hits.length) % this.hits.length;
    this.scrollToIndex(this.hits[this.cur]);
    this.showHits();
  }

  showHits() {
    this.hitLabel.textContent = this.needle ? (this.hits.length ? `${this.cur + 1}/${this.hits.length}` : 'no match') : '';
  }
}

function targetFromHash() {
  const m = /^#L(\d+)$/.exec(location.hash);
  return m ? Number(m[1]) : 0;
}
