// A pipeline run: its stages as columns, the depends_on graph drawn in SVG,
// each job's status live (StreamPipelineStatus), durations and attempts;
// stop the run, cancel or retry a job. The combinations of a matrix job are
// drawn and listed together under their matrix; an approval job waiting
// for a decision has its Approve and Reject buttons; a run of a fork's pull
// request has one to run the pull request's own definition.

import { get, post, watch } from '../api.js';
import { h, s, badge, jobStatus, enumName, fmtDuration, span, fmtTime, errorText, toast, clear, startedBy } from '../dom.js';
import { navigate } from '../app.js';

const NODE_W = 200, NODE_H = 56, COL_GAP = 70, ROW_GAP = 18, TOP = 34, LEFT = 16, GROUP_PAD = 8, GROUP_HEAD = 18;
const FINAL = new Set(['SUCCESS', 'FAILED', 'CANCELLED', 'TIMEOUT', 'SKIPPED']);
// What RetryJob accepts.
const RETRYABLE = new Set(['FAILED', 'CANCELLED', 'TIMEOUT']);

export function runView(main, runId) {
  const head = h('div', { class: 'head' });
  const graph = h('div', { class: 'graph', dataset: { testid: 'run-graph' } });
  const jobsBody = h('tbody');
  const live = h('span', { class: 'note', dataset: { testid: 'stream-state' } });
  main.append(head, graph,
    h('h2', {}, 'Jobs ', live),
    h('table', { dataset: { testid: 'run-jobs' } },
      h('thead', {}, h('tr', {}, ['Job', 'Stage', 'Status', 'Agent', 'Attempt', 'Started', 'Duration', ''].map((t) => h('th', {}, t)))),
      jobsBody));

  let run = null;
  let deps = null; // job name → explicit depends_on, from the pipeline
  const draw = () => {
    if (!run) return;
    drawHead(head, run);
    drawGraph(graph, run, deps || {});
    drawJobs(jobsBody, run, async (j, verdict) => {
      const comment = window.prompt(`${verdict === 'approve' ? 'Approve' : 'Reject'} ${j.name}: a comment (optional)`, '');
      if (comment === null) return;
      try {
        const r = await post(`/v1/runs/${encodeURIComponent(run.id)}/jobs/${encodeURIComponent(j.name)}:${verdict}`, { comment });
        toast(`${j.name} ${verdict === 'approve' ? 'approved' : 'rejected'}`);
        const got = r && r.job;
        if (got) { run.jobs = (run.jobs || []).map((x) => (x.name === got.name ? got : x)); draw(); }
      } catch (err) { toast(errorText(err), true); }
    });
  };
  const loadDeps = async () => {
    deps = {};
    try {
      const p = (await get(`/v1/pipelines/${encodeURIComponent(run.pipeline_id)}`)).pipeline;
      for (const st of p.stages || []) for (const j of st.jobs || []) deps[j.name] = j.depends_on || [];
    } catch { /* drawn without explicit edges */ }
    draw();
  };
  // The stream starts with the current state; the plain read only fills in
  // when it is slower (it must not overwrite a newer state).
  get(`/v1/runs/${encodeURIComponent(runId)}`).then((r) => { if (!run) { run = r.run; draw(); loadDeps(); } })
    .catch((err) => clear(head).append(h('p', { class: 'error' }, errorText(err))));
  // The run's stream ends with the run; jobs still stopping then (a
  // cancel on its way to the agent) are read again until they end. (A
  // stream per job could use up the browser's six connections per host.)
  let poll = null;
  const followStragglers = () => {
    const pending = () => ((run && run.jobs) || []).some((j) => j.id && !FINAL.has(jobStatus(j.status)));
    if (!pending() || poll) return;
    poll = setInterval(async () => {
      try { run = (await get(`/v1/runs/${encodeURIComponent(runId)}`)).run; draw(); } catch { /* next time */ }
      if (!pending()) { clearInterval(poll); }
    }, 1000);
  };
  const w = watch(() => `/v1/runs/${encodeURIComponent(runId)}:watch`, (m) => {
    const first = !run;
    run = m.run;
    draw();
    if (first) loadDeps();
  }, { reopenOnEnd: false, onState: (st, err) => {
    live.textContent = st === 'live' ? '● live' : st === 'ended' ? '' : `${st} ${err ? errorText(err) : ''}`;
    if (st === 'ended') followStragglers();
  } });
  const tick = setInterval(() => { if (run && (run.jobs || []).some((j) => jobStatus(j.status) === 'RUNNING')) draw(); }, 1000);
  return () => { w.close(); clearInterval(poll); clearInterval(tick); };
}

function drawHead(head, run) {
  const st = jobStatus(run.status);
  clear(head).append(
    h('div', { class: 'title' },
      h('h1', {}, h('a', { href: `/pipelines/${encodeURIComponent(run.pipeline_id)}`, 'data-link': true }, run.pipeline_name || 'pipeline'), ` #${run.number} `, badge(st)),
      h('div', { class: 'sub' },
        h('span', { 'data-testid': 'run-trigger' }, startedBy(run)),
        run.started_at
          ? ` · queued ${fmtDuration(span(run.created_at, run.started_at))} · started ${fmtTime(run.started_at)} · ran ${fmtDuration(span(run.started_at, run.finished_at))}`
          : ` · created ${fmtTime(run.created_at)} · queued ${fmtDuration(span(run.created_at, run.finished_at))}`,
        run.message ? ` · ${run.message}` : ''),
      run.commit ? h('div', { class: 'sub', dataset: { testid: 'run-source' } },
        `${run.event || ''} ${run.ref || ''} at `, h('code', {}, run.commit.slice(0, 12)),
        run.author ? ` by ${run.author}` : '',
        run.pull_request ? ` · pull request #${run.pull_request} ${run.pull_request_title || ''}` : '',
        run.untrusted_origin ? ' · untrusted: no secrets, no trusted agents, no cache writes' : '',
        run.definition && run.definition !== 'stored pipeline' ? ` · definition: ${run.definition}` : '') : '',
      Object.keys(run.params || {}).length ? h('div', {}, Object.entries(run.params).map(([k, v]) => h('span', { class: 'chip' }, `${k}=${v}`))) : ''),
    FINAL.has(st) ? '' : h('button', { type: 'button', class: 'danger', id: 'stop-run', onclick: async () => {
      try { await post(`/v1/runs/${run.id}:stop`, { reason: 'stopped from the dashboard' }); toast('Stopping the run'); } catch (err) { toast(errorText(err), true); }
    } }, 'Stop run'),
    // A fork's pull request ran its base branch's definition: a write
    // token may start a run following the pull request's own (the server
    // refuses when the pipeline has none in the repository).
    run.untrusted_origin && run.pull_request ? h('button', { type: 'button', id: 'approve-definition', onclick: async () => {
      const comment = window.prompt(`Run pull request #${run.pull_request} with its own definition (still untrusted): a comment (optional)`, '');
      if (comment === null) return;
      try {
        const r = await post(`/v1/runs/${encodeURIComponent(run.id)}:approve-definition`, { comment });
        toast(`Run #${r.run.number} started with the pull request's own definition`);
        navigate(`/runs/${encodeURIComponent(r.run.id)}`);
      } catch (err) { toast(errorText(err), true); }
    } }, "Run the pull request's own definition") : '');
}

// layout places jobs: one column group per stage, and within a stage one
// column per level of same-stage dependencies.
function layout(run, deps) {
  const groupOf = (j) => (j.matrix && j.matrix.group) || '';
  const members = new Map(); // matrix job → its combinations' names
  for (const j of run.jobs || []) {
    const g = groupOf(j);
    if (g) { if (!members.has(g)) members.set(g, []); members.get(g).push(j.name); }
  }
  // A job's depends_on as written names matrix jobs, which ran as their
  // combinations; a combination depends on what its matrix job does.
  const depsOf = (j) => (deps[j.name] || deps[groupOf(j)] || []).flatMap((d) => members.get(d) || [d]);
  const stages = run.stages && run.stages.length ? run.stages : [...new Set((run.jobs || []).map((j) => j.stage))];
  const byStage = new Map(stages.map((st) => [st, []]));
  for (const j of run.jobs || []) {
    if (!byStage.has(j.stage)) byStage.set(j.stage, []);
    byStage.get(j.stage).push(j);
  }
  const pos = new Map();
  const edges = [];
  let x = LEFT;
  const stageBoxes = [];
  const groups = [];
  let prev = [];
  let height = 0;
  for (const [stage, jobs] of byStage) {
    const names = new Set(jobs.map((j) => j.name));
    const jobDeps = new Map(jobs.map((j) => [j.name, depsOf(j)]));
    const level = new Map();
    const levelOf = (name, seen = new Set()) => {
      if (level.has(name)) return level.get(name);
      if (seen.has(name)) return 0;
      seen.add(name);
      const same = (jobDeps.get(name) || []).filter((d) => names.has(d));
      const l = same.length ? 1 + Math.max(...same.map((d) => levelOf(d, seen))) : 0;
      level.set(name, l);
      return l;
    };
    const cols = [];
    for (const j of jobs) {
      const l = levelOf(j.name);
      (cols[l] = cols[l] || []).push(j);
    }
    // In a column, the combinations of a matrix stay together, in a box
    // headed by the matrix job's name.
    cols.forEach((col, ci) => {
      let y = TOP;
      let open = null;
      const cx = x + ci * (NODE_W + COL_GAP / 2);
      col.forEach((j) => {
        const g = groupOf(j);
        if (open && open.group !== g) { open.h = y - open.y - ROW_GAP + GROUP_PAD; y += GROUP_PAD; groups.push(open); open = null; }
        if (g && !open) { open = { group: g, x: cx - GROUP_PAD, y, w: NODE_W + 2 * GROUP_PAD }; y += GROUP_HEAD; }
        pos.set(j.name, { x: cx, y });
        y += NODE_H + ROW_GAP;
      });
      if (open) { open.h = y - open.y - ROW_GAP + GROUP_PAD; y += GROUP_PAD; groups.push(open); }
      height = Math.max(height, y);
    });
    const width = Math.max(1, cols.length) * NODE_W + (Math.max(1, cols.length) - 1) * COL_GAP / 2;
    stageBoxes.push({ stage, x, width });
    for (const j of jobs) {
      const explicit = depsOf(j);
      const from = explicit.length ? explicit : prev.map((p) => p.name);
      for (const d of from) edges.push([d, j.name]);
    }
    if (jobs.length) prev = jobs;
    x += width + COL_GAP;
  }
  return { pos, edges, stageBoxes, groups, members, width: x - COL_GAP + LEFT, height: height + 4 };
}

function drawGraph(box, run, deps) {
  const { pos, edges, stageBoxes, groups, members, width, height } = layout(run, deps);
  const svg = s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'pipeline graph' });
  for (const b of stageBoxes) svg.append(s('text', { class: 'stage-label', x: b.x, y: 18 }, b.stage));
  for (const g of groups) {
    svg.append(s('g', { class: 'matrix-group', 'data-matrix': g.group },
      s('rect', { x: g.x, y: g.y, width: g.w, height: g.h, rx: 10 }),
      s('text', { class: 'matrix-label', x: g.x + GROUP_PAD, y: g.y + 13 }, truncate(`${g.group} · matrix of ${(members.get(g.group) || []).length}`, 30))));
  }
  for (const [from, to] of edges) {
    const a = pos.get(from), b = pos.get(to);
    if (!a || !b) continue;
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
    const mx = (x1 + x2) / 2;
    svg.append(s('path', { class: 'edge', d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
  }
  for (const j of run.jobs || []) {
    const p = pos.get(j.name);
    if (!p) continue;
    const st = jobStatus(j.status);
    const dur = j.started_at ? fmtDuration(span(j.started_at, j.finished_at)) : '';
    const waitsApproval = isApproval(j) && st === 'PENDING' && j.id;
    const meta = [waitsApproval ? 'awaiting approval' : st.toLowerCase(), dur, j.attempt > 1 ? `attempt ${j.attempt}` : ''].filter(Boolean).join(' · ');
    const g = s('g', { class: 'node', 'data-job': j.name, 'data-status': st, transform: `translate(${p.x},${p.y})`, tabindex: j.id ? 0 : null,
      onclick: () => j.id && navigate(`/jobs/${j.id}`) },
    s('title', {}, j.message ? `${j.name}: ${j.message}` : j.name),
    s('rect', { width: NODE_W, height: NODE_H, rx: 8 }),
    s('circle', { class: 'dot', cx: 16, cy: 20, r: 5 }),
    s('text', { x: 28, y: 24 }, truncate(j.matrix && j.matrix.group ? matrixValues(j) : j.name, 22)),
    s('text', { class: 'meta', x: 28, y: 42 }, meta));
    svg.append(g);
  }
  clear(box).append(svg);
}

function truncate(t, n) { return t.length > n ? t.slice(0, n - 1) + '…' : t; }

const isApproval = (j) => enumName(j.type, 'JOB_TYPE_') === 'APPROVAL';
const matrixValues = (j) => ((j.matrix && j.matrix.values) || []).map((v) => v.value).join(', ');

// approvalCell is what the jobs table says of an approval job: its
// decision, who made it and when, or when it times out.
function approvalCell(j) {
  const a = j.approval || {};
  if (a.decision) {
    return h('div', { class: 'note', dataset: { decision: a.decision } },
      `${a.decision.replace('_', ' ')}${a.by ? ` by ${a.by}` : ''}${a.at ? ` at ${fmtTime(a.at)}` : ''}${a.comment ? `: ${a.comment}` : ''}`);
  }
  return a.expires_at ? h('div', { class: 'note' }, `awaiting approval; times out at ${fmtTime(a.expires_at)}`) : '';
}

function drawJobs(body, run, decide) {
  clear(body);
  const jobs = run.jobs || [];
  const headed = new Set();
  for (const j of jobs) {
    const group = (j.matrix && j.matrix.group) || '';
    if (group && !headed.has(group)) {
      // The matrix job's row: its combinations' statuses counted.
      headed.add(group);
      const mine = jobs.filter((x) => x.matrix && x.matrix.group === group);
      const counts = new Map();
      for (const x of mine) { const st = jobStatus(x.status).toLowerCase(); counts.set(st, (counts.get(st) || 0) + 1); }
      body.append(h('tr', { class: 'matrix-head', dataset: { matrixGroup: group, combinations: String(mine.length) } },
        h('td', { colspan: 8 }, h('strong', {}, group), ` · matrix of ${mine.length}${j.matrix.fail_fast ? ' · fail fast' : ''} · `,
          [...counts].map(([st, n]) => `${n} ${st}`).join(', '))));
    }
    const st = jobStatus(j.status);
    const actions = [];
    if (isApproval(j) && j.id && st === 'PENDING' && !(j.approval && j.approval.decision)) {
      actions.push(h('button', { type: 'button', class: 'primary', dataset: { approve: j.name }, onclick: () => decide(j, 'approve') }, 'Approve'));
      actions.push(h('button', { type: 'button', class: 'danger', dataset: { reject: j.name }, onclick: () => decide(j, 'reject') }, 'Reject'));
    } else if (j.id && (st === 'PENDING' || st === 'RUNNING')) {
      actions.push(h('button', { type: 'button', class: 'danger', onclick: async () => {
        try { await post(`/v1/jobs/${j.id}:cancel`, { reason: 'cancelled from the dashboard' }); } catch (err) { toast(errorText(err), true); }
      } }, 'Cancel'));
    }
    if (j.id && RETRYABLE.has(st) && !isApproval(j)) {
      actions.push(h('button', { type: 'button', dataset: { retry: j.name }, onclick: async () => {
        try {
          await post(`/v1/jobs/${j.id}:retry`);
          toast(`Retrying ${j.name}`);
          navigate(`/jobs/${j.id}`); // the run has ended; the job's page follows the new attempt
        } catch (err) { toast(errorText(err), true); }
      } }, 'Retry'));
    }
    const label = group ? h('span', {}, ((j.matrix && j.matrix.values) || []).map((v) => h('span', { class: 'chip' }, `${v.name}=${v.value}`))) : j.name;
    body.append(h('tr', { class: group ? 'matrix-member' : '', dataset: { job: j.name, status: st, matrix: group } },
      h('td', {}, j.id ? h('a', { href: `/jobs/${j.id}`, 'data-link': true, title: j.name }, label) : label,
        // A waiting or decided approval's message is what its approval
        // cell says: said once.
        j.message && !(isApproval(j) && ((j.approval && j.approval.decision) || st === 'PENDING')) ? h('div', { class: 'note' }, j.message) : '',
        isApproval(j) ? approvalCell(j) : ''),
      h('td', {}, j.stage),
      h('td', {}, badge(st)),
      h('td', {}, isApproval(j) ? 'approval' : (j.agent_name || '—')),
      h('td', { class: 'num' }, j.attempt || '—'),
      h('td', {}, fmtTime(j.started_at)),
      h('td', { class: 'num' }, fmtDuration(span(j.started_at, j.finished_at))),
      h('td', {}, actions)));
  }
}
