// Plugins: every plugin the server loaded (kind, version, sha256, grants,
// load state) and the live feed of load, reload and failure events.

import { get, post, query, watch } from '../api.js';
import { h, badge, enumName, fmtTime, errorText, toast, clear } from '../dom.js';


export function pluginsView(main) {
  const body = h('tbody');
  const feed = h('ul', { class: 'feed', dataset: { testid: 'plugin-feed' } });
  const live = h('span', { class: 'note', dataset: { testid: 'stream-state' } });
  main.append(
    h('div', { class: 'head' },
      h('div', { class: 'title' }, h('h1', {}, 'Plugins'),
        h('div', { class: 'sub' }, 'WebAssembly plugins loaded by the server; a file dropped in a watched folder is (re)loaded at once. Calls and errors per plugin are in ',
          h('a', { href: '/metrics', target: '_blank', rel: 'noopener' }, '/metrics'), '.')),
      h('button', { type: 'button', onclick: async () => {
        try { await post('/v1/plugins:reload'); toast('Plugins reloaded'); load(); } catch (err) { toast(errorText(err), true); }
      } }, 'Reload all')),
    h('table', { dataset: { testid: 'plugins' } },
      h('thead', {}, h('tr', {}, ['Plugin', 'Kind', 'Version', 'SHA-256', 'State', 'Grants', 'Instances', 'Loaded'].map((t) => h('th', {}, t)))),
      body),
    h('h2', {}, 'Plugin events ', live),
    h('div', { class: 'panel' }, feed));
  const load = async () => {
    let r;
    try { r = await get('/v1/plugins'); } catch (err) {
      clear(body).append(h('tr', {}, h('td', { colspan: 8, class: 'error' }, errorText(err))));
      return;
    }
    clear(body);
    const list = (r.plugins || []).sort((a, b) => a.name.localeCompare(b.name));
    if (!list.length) body.append(h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No plugin loaded.')));
    for (const p of list) {
      const md = p.metadata || {};
      const state = enumName(p.state, 'PLUGIN_STATE_');
      body.append(h('tr', { dataset: { plugin: p.name, state, sha256: p.sha256 || '' } },
        h('td', {}, h('strong', {}, p.name), md.description ? h('div', { class: 'note' }, md.description) : '', h('div', { class: 'note mono' }, p.path || '')),
        h('td', {}, enumName(p.kind || md.kind, 'KIND_').toLowerCase()),
        h('td', {}, md.version || '—'),
        h('td', { class: 'mono', title: p.sha256 || '' }, (p.sha256 || '').slice(0, 12)),
        h('td', {}, badge(state), p.last_error ? h('div', { class: 'error' }, p.last_error) : '',
          p.warning ? h('div', { class: 'warning', dataset: { testid: 'plugin-warning' } }, p.warning) : '',
          (p.needed_by || []).length ? h('div', { class: 'note', dataset: { testid: 'plugin-needed-by' } }, `needed by ${p.needed_by.join(', ')}`) : '',
          p.failure_policy ? h('div', { class: 'note' }, enumName(p.failure_policy, 'FAILURE_POLICY_').toLowerCase().replace('_', ' ')) : ''),
        h('td', {}, grants(p.granted)),
        h('td', { class: 'num' }, `${p.instances || 0}/${p.max_instances || '∞'}`),
        h('td', {}, fmtTime(p.loaded_at))));
    }
  };
  load();
  const w = watch(() => '/v1/events' + query({ names: ['plugin.*'], last: 20 }), (m) => {
    if (m.history_end) return;
    const e = m.event;
    feed.prepend(eventItem(e, m.past));
    while (feed.children.length > 200) feed.lastChild.remove();
    load();
  }, { onState: (st, err) => { live.textContent = st === 'live' ? '● live' : `${st} ${err ? errorText(err) : ''}`; } });
  return () => w.close();
}

function grants(g) {
  if (!g) return h('span', { class: 'note' }, 'none');
  const out = [];
  for (const host of g.allowed_hosts || []) out.push(h('span', { class: 'chip', title: 'network host' }, `net ${host}`));
  for (const p of g.allowed_paths || []) out.push(h('span', { class: 'chip', title: p.host_path || '' }, `${p.read_only ? 'ro' : 'rw'} ${p.guest_path}`));
  if (g.memory_limit_mib) out.push(h('span', { class: 'chip' }, `mem ${g.memory_limit_mib} MiB`));
  if (g.timeout_ms) out.push(h('span', { class: 'chip' }, `timeout ${Number(g.timeout_ms) / 1000}s`));
  for (const k of g.config_keys || []) out.push(h('span', { class: 'chip' }, `config ${k}`));
  return out.length ? out : h('span', { class: 'note' }, 'none');
}

// tone colours an event by its name.
function tone(name) {
  if (/\.(failed|offline|dropped|timeout)$/.test(name)) return 'bad';
  if (/\.(succeeded|loaded|online|delivered)$/.test(name)) return 'good';
  if (/\.(started|labels_changed)$/.test(name)) return 'run';
  if (/\.created$/.test(name)) return 'new';
  return 'quiet';
}

export function eventItem(e, past = false) {
  const name = e.name || enumName(e.type, 'EVENT_TYPE_').toLowerCase();
  const a = e.attributes || {};
  return h('li', { dataset: { name, resource: e.resource_id || '', past: past ? 'true' : 'false' }, class: past ? 'past' : '' },
    h('time', {}, fmtTime(e.timestamp)),
    h('span', { class: `badge tone-${tone(name)}`, dataset: { status: name } }, name),
    h('span', { class: 'what' }, resourceLink(e), ' ', e.message || '',
      a.version ? h('span', { class: 'chip' }, `v ${a.version}`) : '',
      a.sha256 ? h('span', { class: 'chip', title: a.sha256 }, a.sha256.slice(0, 12)) : ''));
}

// resourceLink names an event's resource, linked to its page.
function resourceLink(e) {
  const id = e.resource_id || '';
  const text = h('strong', {}, `${e.resource_type || ''} ${id}`);
  const href = { job: `/jobs/${id}`, pipeline_run: `/runs/${id}`, agent: '/agents', plugin: '/plugins' }[e.resource_type];
  return href && id ? h('a', { href, 'data-link': true }, text) : text;
}
