// Pipelines: the list with each one's last status and statistics, a
// pipeline's runs, creating a pipeline from its YAML, and triggering a run
// with parameters.

import { get, post, query, watch } from '../api.js';
import { h, badge, jobStatus, fmtDuration, seconds, fmtTime, ago, errorText, toast, span, clear, startedBy } from '../dom.js';
import { navigate } from '../app.js';

export function pipelinesView(main) {
  const body = h('tbody');
  const table = h('table', { dataset: { testid: 'pipelines' } },
    h('thead', {}, h('tr', {}, ['Pipeline', 'Last run', 'Runs', 'Success', 'Avg. duration', 'Stages', ''].map((t) => h('th', {}, t)))),
    body);
  main.append(
    h('div', { class: 'head' },
      h('div', { class: 'title' }, h('h1', {}, 'Pipelines'), h('div', { class: 'sub' }, 'Definitions, their last outcome and statistics.')),
      h('button', { class: 'primary', type: 'button', id: 'new-pipeline', onclick: () => newPipelineDialog() }, 'New pipeline')),
    table);
  const load = async () => {
    let resp;
    try {
      resp = await get('/v1/pipelines' + query({ page_size: 200, order_by: 'name' }));
    } catch (err) {
      clear(body).append(h('tr', {}, h('td', { colspan: 7, class: 'error' }, errorText(err))));
      return;
    }
    clear(body);
    const list = resp.pipelines || [];
    if (!list.length) {
      body.append(h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No pipeline yet. Create one from a .arcade.yaml file.')));
    }
    for (const p of list) {
      const st = p.statistics || {};
      body.append(h('tr', { dataset: { pipeline: p.name } },
        h('td', {}, h('a', { href: `/pipelines/${encodeURIComponent(p.id)}`, 'data-link': true }, h('strong', {}, p.name))),
        h('td', {}, st.last_run_at ? [badge(jobStatus(st.last_run_status)), ' ', h('span', { class: 'note', title: fmtTime(st.last_run_at) }, ago(st.last_run_at))] : h('span', { class: 'note' }, 'never')),
        h('td', { class: 'num' }, st.total_runs || '0'),
        h('td', { class: 'num' }, st.total_runs ? `${Math.round((st.success_rate || 0) * 100)}%` : '—'),
        h('td', { class: 'num' }, st.average_duration ? fmtDuration(seconds(st.average_duration)) : '—'),
        h('td', {}, (p.stages || []).map((s) => h('span', { class: 'chip' }, s.name))),
        h('td', {}, h('button', { type: 'button', class: 'primary', dataset: { trigger: p.name }, onclick: () => triggerDialog(p) }, 'Trigger'))));
    }
  };
  load();
  // Refresh as runs change.
  const w = watch(() => '/v1/events' + query({ names: ['pipeline.*'] }), () => load());
  return () => w.close();
}

export function pipelineView(main, id) {
  const head = h('div', { class: 'head' });
  const runs = h('tbody');
  main.append(head,
    h('h2', {}, 'Runs'),
    h('table', { dataset: { testid: 'runs' } },
      h('thead', {}, h('tr', {}, ['#', 'Status', 'Trigger', 'Commit, parameters', 'Started', 'Duration'].map((t) => h('th', {}, t)))), runs));
  let pipeline = null;
  const load = async () => {
    try {
      pipeline = (await get(`/v1/pipelines/${encodeURIComponent(id)}`)).pipeline;
      const resp = await get(`/v1/pipelines/${encodeURIComponent(id)}/runs` + query({ page_size: 50 }));
      const st = pipeline.statistics || {};
      clear(head).append(
        h('div', { class: 'title' }, h('h1', {}, pipeline.name),
          h('div', { class: 'sub' }, `${st.total_runs || 0} runs · ${st.total_runs ? Math.round((st.success_rate || 0) * 100) + '% success' : 'no runs yet'}`,
            st.average_duration ? ` · ${fmtDuration(seconds(st.average_duration))} on average` : '',
            ` · stages: ${(pipeline.stages || []).map((s) => s.name).join(' → ')}`),
          pipeline.source ? h('div', { class: 'sub', dataset: { testid: 'pipeline-source' } }, 'source ', h('code', {}, pipeline.source.url),
            ` · branch ${pipeline.source.default_branch || 'main'}`,
            pipeline.source.credential ? ` · credential from secret ${pipeline.source.credential}` : '',
            pipeline.source.definition_path ? ` · definition from ${pipeline.source.definition_path}` : '') : ''),
        h('button', { class: 'primary', type: 'button', onclick: () => triggerDialog(pipeline) }, 'Trigger'));
      clear(runs);
      for (const r of resp.runs || []) {
        runs.append(h('tr', {},
          h('td', {}, h('a', { href: `/runs/${r.id}`, 'data-link': true }, `#${r.number}`)),
          h('td', {}, badge(jobStatus(r.status))),
          h('td', { 'data-testid': 'run-trigger' }, startedBy(r)),
          h('td', {}, r.commit ? h('code', {}, r.commit.slice(0, 12)) : '', r.commit ? ' ' : '',
            Object.entries(r.params || {}).map(([k, v]) => h('span', { class: 'chip' }, `${k}=${v}`))),
          h('td', {}, fmtTime(r.started_at || r.created_at)),
          h('td', { class: 'num' }, fmtDuration(span(r.started_at, r.finished_at)),
            r.started_at ? h('span', { class: 'note' }, ` (queued ${fmtDuration(span(r.created_at, r.started_at))})`) : '')));
      }
      if (!(resp.runs || []).length) runs.append(h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No run yet.')));
    } catch (err) {
      clear(head).append(h('p', { class: 'error' }, errorText(err)));
    }
  };
  load();
  const w = watch(() => '/v1/events' + query({ names: ['pipeline.*'] }), () => load());
  return () => w.close();
}

function dialog(title, ...content) {
  const d = h('dialog', {}, h('h1', {}, title), ...content);
  document.body.append(d);
  d.addEventListener('close', () => d.remove());
  d.showModal();
  return d;
}

// parsePairs reads "KEY=value" lines.
function parsePairs(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const i = t.indexOf('=');
    if (i <= 0) throw new Error(`"${t}": want KEY=value`);
    out[t.slice(0, i).trim()] = t.slice(i + 1).trim();
  }
  return out;
}

export function triggerDialog(p) {
  const params = h('textarea', { rows: 5, id: 'trigger-params', placeholder: Object.keys(p.env || {}).map((k) => `${k}=…`).join('\n') || 'KEY=value' });
  const msg = h('p', { class: 'error' });
  const d = dialog(`Trigger ${p.name}`,
    h('p', { class: 'note' }, 'Parameters become environment variables of the run (one KEY=value per line) and override the pipeline\'s env.'),
    params, msg,
    h('div', { class: 'row' }, h('span', { class: 'spacer' }),
      h('button', { type: 'button', onclick: () => d.close() }, 'Cancel'),
      h('button', { type: 'button', class: 'primary', id: 'trigger-run', onclick: async () => {
        try {
          const resp = await post(`/v1/pipelines/${encodeURIComponent(p.id)}:trigger`, { params: parsePairs(params.value) });
          d.close();
          toast(`Run #${resp.run.number} of ${p.name} started`);
          navigate(`/runs/${resp.run.id}`);
        } catch (err) { msg.textContent = errorText(err); }
      } }, 'Run')));
}

function newPipelineDialog() {
  const yaml = h('textarea', { rows: 18, id: 'pipeline-yaml', placeholder: 'name: my-pipeline\nstages:\n  - name: build\n    jobs:\n      - name: compile\n        commands: ["make"]' });
  const file = h('input', { type: 'file', accept: '.yaml,.yml', onchange: async () => { if (file.files[0]) yaml.value = await file.files[0].text(); } });
  const msg = h('p', { class: 'error' });
  const d = dialog('New pipeline',
    h('p', { class: 'note' }, 'Paste a pipeline file (.arcade.yaml) or pick one.'), file, yaml, msg,
    h('div', { class: 'row' }, h('span', { class: 'spacer' }),
      h('button', { type: 'button', onclick: () => d.close() }, 'Cancel'),
      h('button', { type: 'button', class: 'primary', id: 'create-pipeline', onclick: async () => {
        try {
          const resp = await post('/v1/pipelines', { yaml: yaml.value });
          d.close();
          toast(`Pipeline ${resp.pipeline.name} created`);
          navigate(`/pipelines/${encodeURIComponent(resp.pipeline.id)}`);
        } catch (err) { msg.textContent = errorText(err); }
      } }, 'Create')));
}
