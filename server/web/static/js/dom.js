// DOM building and formatting. Text always goes in as text nodes, never as
// HTML, so nothing a job prints can inject markup.

// h('a', {href: '/x', class: 'y', onclick: fn}, 'text', child…)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const SVG = 'http://www.w3.org/2000/svg';
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function clear(el) { while (el.firstChild) el.firstChild.remove(); return el; }

// enumName('JOB_STATUS_SUCCESS', 'JOB_STATUS_') → 'SUCCESS'
export function enumName(v, prefix) {
  if (v === undefined || v === null) return 'UNSPECIFIED';
  return String(v).startsWith(prefix) ? String(v).slice(prefix.length) : String(v);
}

export function badge(name) {
  const n = (name || 'UNSPECIFIED').toLowerCase();
  return h('span', { class: `badge s-${n}`, dataset: { status: name } }, n);
}

export const jobStatus = (v) => enumName(v, 'JOB_STATUS_');
export const agentStatus = (v) => enumName(v, 'AGENT_STATUS_');

// seconds reads a protojson Duration ("1.5s").
export function seconds(d) {
  if (!d) return 0;
  return parseFloat(String(d).replace(/s$/, '')) || 0;
}

export function fmtDuration(sec) {
  if (sec === null || sec === undefined || Number.isNaN(sec)) return '—';
  if (sec < 1) return `${Math.round(sec * 1000)}ms`;
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 1 : 0)}s`;
  const m = Math.floor(sec / 60);
  if (m < 60) return `${m}m ${Math.floor(sec % 60)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

// span returns how long something ran: from start to end, or to now.
export function span(start, end) {
  if (!start) return null;
  const a = Date.parse(start);
  const b = end ? Date.parse(end) : Date.now();
  return Math.max(0, (b - a) / 1000);
}

export function fmtTime(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function ago(ts) {
  if (!ts) return '—';
  const s = (Date.now() - Date.parse(ts)) / 1000;
  if (s < 5) return 'just now';
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function fmtBytes(n) {
  n = Number(n || 0);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function chips(labels) {
  const entries = Object.entries(labels || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return h('span', { class: 'note' }, 'none');
  return entries.map(([k, v]) => h('span', { class: 'chip' }, v === '' ? k : `${k}=${v}`));
}

export function toast(message, bad = false) {
  const box = document.getElementById('toast');
  const m = h('div', { class: 'msg' + (bad ? ' bad' : '') }, message);
  box.append(m);
  setTimeout(() => m.remove(), bad ? 8000 : 4000);
}

// errorText says what went wrong, kindly for the codes users meet.
export function errorText(err) {
  if (!err) return '';
  if (err.httpStatus === 403) return `Not allowed with this token: ${err.message}`;
  return err.message || String(err);
}

// startedBy says what started a run in one phrase: its cause when that names
// the trigger already ('cron "0 * * * *" at …', 'pipeline build run #3
// succeeded'), else the trigger and the cause ('manual (api by api_token)').
export function startedBy(run) {
  const name = (run.trigger || '').replace('TRIGGER_TYPE_', '').toLowerCase();
  const by = run.triggered_by || '';
  if (!by) return name;
  if (by.startsWith(name + ' ')) return by;
  return `${name} (${by})`;
}
