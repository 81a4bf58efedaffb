// A job: its state live (StreamJobStatus), its log followed like tail -f
// (StreamJobLog), its artifacts, and why it waits (ExplainJob).

import { get, post, query, watch, token, APIError } from '../api.js';
import { h, badge, jobStatus, agentStatus, fmtDuration, span, fmtTime, fmtBytes, errorText, toast, clear, chips } from '../dom.js';
import { LogView } from '../logview.js';

const FINAL = new Set(['SUCCESS', 'FAILED', 'CANCELLED', 'TIMEOUT', 'SKIPPED']);
// What RetryJob accepts.
const RETRYABLE = new Set(['FAILED', 'CANCELLED', 'TIMEOUT']);

export function jobView(main, jobId) {
  const head = h('div', { class: 'head' });
  const info = h('div', { class: 'panel' });
  const explain = h('div', { class: 'panel', hidden: true, dataset: { testid: 'explain' } });
  const artifacts = h('div', { class: 'panel', dataset: { testid: 'artifacts' } }, h('span', { class: 'note' }, 'Loading artifacts…'));
  const attemptSel = h('select', { 'aria-label': 'attempt', onchange: () => openLog(Number(attemptSel.value)) });
  const lv = new LogView();
  main.append(head, info, explain,
    h('h2', {}, 'Log ', attemptSel), lv.el,
    h('h2', {}, 'Artifacts'), artifacts);

  let job = null;
  let logStream = null;
  let shownAttempt = 0;
  let lastStatus = '';

  const openLog = (attempt) => {
    if (logStream) logStream.close();
    lv.reset();
    lv.setState('');
    logStream = watch(() => `/v1/jobs/${encodeURIComponent(jobId)}/log:stream` + query({
      follow: true, attempt, from_line: lv.nums.length ? lv.nums[lv.nums.length - 1] + 1 : 1,
    }), (m) => {
      if (m.gap) lv.gap(m.gap.from_line, m.gap.to_line);
      if (m.lines) lv.append(m.lines);
      if (m.final_status) lv.setState(`ended: ${jobStatus(m.final_status).toLowerCase()}`);
    }, { reopenOnEnd: false, onState: (st, err) => {
      if (st === 'live') lv.setState('● live');
      else if (st === 'error' || st === 'reconnecting') lv.setState(`${st}: ${errorText(err)}`);
    } });
  };

  const show = (j) => {
    job = j;
    const st = jobStatus(j.status);
    drawHead(head, j, st, () => openStatus());
    drawInfo(info, j);
    if (j.attempt && j.attempt !== shownAttempt) {
      shownAttempt = j.attempt;
      clear(attemptSel);
      for (let a = j.attempt; a >= 1; a--) attemptSel.append(h('option', { value: a }, `attempt ${a}${a === j.attempt ? ' (latest)' : ''}`));
      attemptSel.hidden = j.attempt < 2;
      openLog(j.attempt);
    } else if (!j.attempt && !logStream) {
      openLog(0);
    }
    if (st === 'PENDING') loadExplain(explain, jobId); else explain.hidden = true;
    if (st !== lastStatus && (lastStatus === '' || FINAL.has(st))) loadArtifacts(artifacts, jobId);
    lastStatus = st;
  };

  // The stream starts with the current state; the plain read only fills in
  // when it is slower (it must not overwrite a newer state).
  get(`/v1/jobs/${encodeURIComponent(jobId)}`).then((r) => { if (!job) show(r.job); })
    .catch((err) => clear(head).append(h('p', { class: 'error' }, errorText(err))));
  // The status stream ends with the job; a retry opens it again.
  let statusStream = null;
  const openStatus = () => {
    if (statusStream) statusStream.close();
    statusStream = watch(() => `/v1/jobs/${encodeURIComponent(jobId)}:watch`, (m) => show(m.job), { reopenOnEnd: false });
  };
  openStatus();
  const tick = setInterval(() => { if (job && jobStatus(job.status) === 'RUNNING') drawInfo(info, job); }, 1000);
  return () => { statusStream.close(); if (logStream) logStream.close(); lv.destroy(); clearInterval(tick); };
}

function drawHead(head, j, st, retried) {
  const actions = [];
  if (st === 'PENDING' || st === 'RUNNING') {
    actions.push(h('button', { type: 'button', class: 'danger', onclick: async () => {
      try { await post(`/v1/jobs/${j.id}:cancel`, { reason: 'cancelled from the dashboard' }); } catch (err) { toast(errorText(err), true); }
    } }, 'Cancel'));
  }
  if (RETRYABLE.has(st)) {
    actions.push(h('button', { type: 'button', id: 'retry-job', onclick: async () => {
      try { await post(`/v1/jobs/${j.id}:retry`); toast(`Retrying ${j.name}`); retried(); } catch (err) { toast(errorText(err), true); }
    } }, 'Retry'));
  }
  if (st === 'PENDING') {
    actions.push(h('button', { type: 'button', onclick: () => document.querySelector('[data-testid=explain]').scrollIntoView() }, 'Why pending?'));
  }
  clear(head).append(
    h('div', { class: 'title' },
      h('h1', {}, j.name, ' ', badge(st)),
      h('div', { class: 'sub' },
        j.run_id ? [h('a', { href: `/runs/${j.run_id}`, 'data-link': true }, 'run'), ` · stage ${j.stage} · `] : '',
        `job ${j.id}`)),
    ...actions);
}

function drawInfo(info, j) {
  const row = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
  clear(info).append(h('dl', { class: 'kv' },
    row('Agent', j.agent_name ? `${j.agent_name}` : '—'),
    row('Attempt', `${j.attempt || 0}${j.retries ? ` (retries allowed: ${j.retries})` : ''}`),
    row('Created', fmtTime(j.created_at)),
    row('Started', fmtTime(j.started_at)),
    row('Duration', fmtDuration(span(j.started_at, j.finished_at))),
    FINAL.has(jobStatus(j.status)) ? row('Exit code', String(j.exit_code ?? 0)) : [],
    j.message ? row('Message', j.message) : [],
    j.image ? row('Image', h('code', {}, j.image)) : [],
    j.label_selector || Object.keys(j.labels || {}).length ? row('Labels', chips(j.labels)) : [],
    (j.steps || []).length ? row('Steps', (j.steps || []).map((s, i) => h('div', { class: 'mono' }, `${i + 1}. ${s.name || s.uses || (s.commands || []).join(' && ') || 'step'}`))) : [],
    (j.commands || []).length ? row('Commands', (j.commands || []).map((c) => h('div', { class: 'mono' }, c))) : []));
}

async function loadExplain(box, jobId) {
  box.hidden = false;
  let r;
  try {
    r = await get(`/v1/jobs/${encodeURIComponent(jobId)}:explain`);
  } catch (err) {
    clear(box).append(h('strong', {}, 'Why pending? '), h('span', { class: 'note' },
      err instanceof APIError && err.unimplemented ? 'This server cannot explain waiting jobs yet.' : errorText(err)));
    return;
  }
  const rows = (r.agents || []).map((a) => h('tr', {},
    h('td', {}, a.agent_name || a.agent_id),
    h('td', {}, badge(agentStatus(a.status))),
    h('td', {}, a.matches ? (a.full ? 'matches, but full' : 'matches') : 'does not match'),
    h('td', {}, (a.failed_terms || []).map((t) => h('div', { class: 'mono' }, t)),
      (a.missing_plugins || []).length ? h('div', { class: 'note' }, `missing plugins: ${a.missing_plugins.join(', ')}`) : ''),
    h('td', { class: 'num' }, `${a.running_jobs || 0}/${a.max_concurrent_jobs || 0}`)));
  clear(box).append(
    h('strong', {}, 'Why pending? '), r.summary || '',
    r.queue_position ? h('div', { class: 'note' }, `Place in the queue: ${r.queue_position} of ${r.queue_length}`) : '',
    rows.length ? h('table', {}, h('thead', {}, h('tr', {}, ['Agent', 'Status', 'Selector', 'Failed terms', 'Jobs'].map((t) => h('th', {}, t)))), h('tbody', {}, rows)) : '');
}

async function loadArtifacts(box, jobId) {
  let r;
  try {
    r = await get(`/v1/jobs/${encodeURIComponent(jobId)}/artifacts` + query({ page_size: 200 }));
  } catch (err) {
    clear(box).append(h('span', { class: 'note' },
      err instanceof APIError && err.unimplemented ? 'This server does not list artifacts yet.' : errorText(err)));
    return;
  }
  const list = r.artifacts || [];
  if (!list.length) { clear(box).append(h('span', { class: 'note' }, 'No artifacts.')); return; }
  clear(box).append(h('table', {},
    h('thead', {}, h('tr', {}, ['Path', 'Size', 'SHA-256', 'Attempt', 'Expires', ''].map((t) => h('th', {}, t)))),
    h('tbody', {}, list.map((a) => h('tr', {},
      h('td', { class: 'mono' }, a.path),
      h('td', { class: 'num' }, fmtBytes(a.size_bytes)),
      h('td', { class: 'mono', title: a.sha256 || '' }, (a.sha256 || '').slice(0, 12)),
      h('td', { class: 'num' }, a.attempt || ''),
      h('td', {}, a.expires_at ? fmtTime(a.expires_at) : 'never'),
      h('td', {}, a.stored === false ? h('span', { class: 'note' }, 'uploading…') : h('button', { type: 'button', onclick: () => download(a) }, 'Download')))))));
}

// download follows a presigned URL of the store when the server hands one
// out (GetArtifactURL: the bytes skip the server; the store names the file
// through Content-Disposition); otherwise it fetches the bytes through the
// server with the token (a plain link cannot send it) and saves them.
async function download(a) {
  let target = {};
  try {
    target = await get(`/v1/jobs/${encodeURIComponent(a.job_id)}/artifacts:url` + query({ path: a.path, attempt: a.attempt || 0 }));
  } catch (err) {
    if (!(err instanceof APIError && err.unimplemented)) { toast(`Download failed: ${errorText(err)}`, true); return; }
  }
  if (target.url) {
    const anchor = h('a', { href: target.url, rel: 'noreferrer', dataset: { testid: 'artifact-link' } });
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
    return;
  }
  const path = a.path.split('/').map(encodeURIComponent).join('/');
  const res = await fetch(`/artifacts/${encodeURIComponent(a.job_id)}/${path}?attempt=${a.attempt || 0}`, { headers: { Authorization: 'Bearer ' + token.get() } });
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = (await res.json()).message || msg; } catch { /* not JSON */ }
    toast(res.status === 501 ? 'This server cannot serve artifact downloads yet.' : `Download failed: ${msg}`, true);
    return;
  }
  const url = URL.createObjectURL(await res.blob());
  const link = h('a', { href: url, download: a.path.split('/').pop() });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
