// Agents: status live (StreamAgentStatus), labels (edit: merge or replace),
// running jobs, CPU, memory and disk from the agents' metrics.

import { get, patch, query, watch } from '../api.js';
import { h, badge, agentStatus, chips, fmtBytes, ago, fmtTime, errorText, toast, clear } from '../dom.js';

export function agentsView(main) {
  const body = h('tbody');
  const live = h('span', { class: 'note', dataset: { testid: 'stream-state' } });
  main.append(
    h('div', { class: 'head' }, h('div', { class: 'title' }, h('h1', {}, 'Agents'),
      h('div', { class: 'sub' }, 'Machines that run jobs; their status follows their heartbeats. ', live))),
    h('table', { dataset: { testid: 'agents' } },
      h('thead', {}, h('tr', {}, ['Agent', 'Status', 'Labels', 'Jobs', 'CPU', 'Memory', 'Disk', 'Heartbeat', ''].map((t) => h('th', {}, t)))),
      body));
  const agents = new Map();
  const running = new Map(); // agent id → running jobs
  let editing = null;
  const draw = () => {
    if (editing) return; // do not redraw under the label editor
    clear(body);
    const list = [...agents.values()].sort((a, b) => a.name.localeCompare(b.name));
    if (!list.length) body.append(h('tr', {}, h('td', { colspan: 9, class: 'empty' }, 'No agent has registered yet.')));
    for (const a of list) body.append(agentRow(a, running.get(a.id) || [], (tr) => { editing = tr; }, () => { editing = null; draw(); }));
  };
  const loadRunning = async () => {
    try {
      const r = await get('/v1/jobs' + query({ statuses: 'JOB_STATUS_RUNNING', page_size: 500 }));
      running.clear();
      for (const j of r.jobs || []) {
        if (!running.has(j.agent_id)) running.set(j.agent_id, []);
        running.get(j.agent_id).push(j);
      }
      draw();
    } catch { /* shown without running jobs */ }
  };
  get('/v1/agents' + query({ page_size: 500, order_by: 'name' })).then((r) => {
    // What the stream sent meanwhile is newer.
    for (const a of r.agents || []) if (!agents.has(a.id)) agents.set(a.id, a);
    draw();
  }).catch((err) => clear(body).append(h('tr', {}, h('td', { colspan: 9, class: 'error' }, errorText(err)))));
  loadRunning();
  const w = watch(() => '/v1/agents:watch', (m) => {
    const before = agents.get(m.agent.id);
    agents.set(m.agent.id, m.agent);
    if (!before || before.running_jobs !== m.agent.running_jobs) loadRunning(); else draw();
  }, { onState: (st, err) => { live.textContent = st === 'live' ? '● live' : `${st} ${err ? errorText(err) : ''}`; } });
  const tick = setInterval(draw, 5000); // "last heartbeat … ago"
  return () => { w.close(); clearInterval(tick); };
}

function meter(pct, text) {
  if (pct === undefined || pct === null) return h('span', { class: 'note' }, '—');
  const p = Math.max(0, Math.min(100, pct));
  return h('span', { title: text }, h('span', { class: 'bar' + (p > 85 ? ' hot' : '') }, barFill(p)), `${p.toFixed(0)}%`);
}

function barFill(p) {
  const f = h('span');
  f.style.width = `${p}%`;
  return f;
}

function agentRow(a, jobs, onEdit, onDone) {
  const st = a.revoked ? 'REVOKED' : agentStatus(a.status);
  const m = a.metrics;
  const tr = h('tr', { dataset: { agent: a.name, status: st } });
  const labelsCell = h('td', {}, chips(a.labels));
  tr.append(
    h('td', {}, h('strong', {}, a.name), h('div', { class: 'note' }, `${a.hostname || ''} · ${a.os || '?'}/${a.arch || '?'}${a.version ? ' · ' + a.version : ''}`)),
    h('td', {}, badge(st)),
    labelsCell,
    h('td', {}, `${a.running_jobs || 0}/${a.max_concurrent_jobs || 0}`,
      jobs.map((j) => h('div', {}, h('a', { href: `/jobs/${j.id}`, 'data-link': true }, j.name)))),
    h('td', {}, m ? meter(m.cpu_percent, `load ${m.load1 ?? '—'}`) : meter()),
    h('td', {}, m ? meter(m.memory_percent, `${fmtBytes(m.memory_used_bytes)} of ${fmtBytes(m.memory_total_bytes)}`) : meter()),
    h('td', {}, m ? meter(m.disk_percent, `${fmtBytes(m.disk_used_bytes)} of ${fmtBytes(m.disk_total_bytes)}`) : meter()),
    h('td', { title: fmtTime(a.last_heartbeat_at) }, ago(a.last_heartbeat_at)),
    h('td', {}, a.revoked ? '' : h('button', { type: 'button', dataset: { editLabels: a.name }, onclick: () => { onEdit(tr); editLabels(labelsCell, a, onDone); } }, 'Edit labels')));
  return tr;
}

function editLabels(cell, a, onDone) {
  const text = h('textarea', { rows: 4, 'aria-label': 'labels', dataset: { testid: 'labels-text' } },
    Object.entries(a.labels || {}).map(([k, v]) => `${k}=${v}`).join('\n'));
  const mode = h('select', { 'aria-label': 'mode' },
    h('option', { value: 'LABEL_UPDATE_MODE_MERGE' }, 'merge (set these, keep others)'),
    h('option', { value: 'LABEL_UPDATE_MODE_REPLACE' }, 'replace (exactly these)'));
  const remove = h('input', { type: 'text', placeholder: 'keys to remove (merge), comma-separated', 'aria-label': 'remove keys' });
  const msg = h('div', { class: 'error' });
  const save = async () => {
    const labels = {};
    for (const line of text.value.split('\n')) {
      const t = line.trim();
      if (!t) continue;
      const i = t.indexOf('=');
      if (i === 0) { msg.textContent = `"${t}": want key=value`; return; }
      if (i < 0) labels[t] = ''; else labels[t.slice(0, i).trim()] = t.slice(i + 1).trim();
    }
    try {
      await patch(`/v1/agents/${encodeURIComponent(a.id)}/labels`, {
        labels, mode: mode.value,
        remove_keys: remove.value.split(',').map((x) => x.trim()).filter(Boolean),
      });
      toast(`Labels of ${a.name} saved`);
      onDone();
    } catch (err) { msg.textContent = errorText(err); }
  };
  clear(cell).append(text, h('div', { class: 'row' }, mode, remove),
    h('div', { class: 'row' }, h('button', { type: 'button', class: 'primary', dataset: { testid: 'save-labels' }, onclick: save }, 'Save'),
      h('button', { type: 'button', onclick: onDone }, 'Cancel')), msg);
  text.focus();
}
