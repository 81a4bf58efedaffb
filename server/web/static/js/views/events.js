// Events: the live feed of system events, filtered by type and resource.

import { query, watch } from '../api.js';
import { h, errorText, clear } from '../dom.js';
import { eventItem } from './plugins.js';

const TYPES = ['JOB_CREATED', 'JOB_STARTED', 'JOB_FINISHED', 'JOB_CANCELLED', 'PIPELINE_RUN_STATUS',
  'AGENT_ONLINE', 'AGENT_OFFLINE', 'AGENT_LABELS_CHANGED', 'PLUGIN_LOADED', 'PLUGIN_UNLOADED', 'PLUGIN_FAILED'];

export function eventsView(main) {
  const params = new URLSearchParams(location.search);
  const types = h('select', { multiple: true, size: 6, 'aria-label': 'event types' },
    TYPES.map((t) => h('option', { value: 'EVENT_TYPE_' + t, selected: params.getAll('type').includes(t) }, t.toLowerCase().replaceAll('_', ' '))));
  const resType = h('select', { 'aria-label': 'resource type' },
    ['', 'job', 'pipeline_run', 'agent', 'plugin'].map((r) => h('option', { value: r, selected: params.get('resource_type') === r }, r || 'any resource')));
  const resId = h('input', { type: 'text', placeholder: 'resource id', value: params.get('resource_id') || '', 'aria-label': 'resource id' });
  const feed = h('ul', { class: 'feed', dataset: { testid: 'events' } });
  const live = h('span', { class: 'note', dataset: { testid: 'stream-state' } });
  let w = null;
  const start = () => {
    if (w) w.close();
    clear(feed);
    const chosen = [...types.selectedOptions].map((o) => o.value);
    const q = { types: chosen, resource_type: resType.value, resource_id: resId.value.trim() };
    history.replaceState(null, '', '/events' + query({ type: chosen.map((t) => t.replace('EVENT_TYPE_', '')), resource_type: q.resource_type, resource_id: q.resource_id }));
    w = watch(() => '/v1/events' + query(q), (m) => {
      feed.prepend(eventItem(m.event));
      while (feed.children.length > 500) feed.lastChild.remove();
    }, { onState: (st, err) => { live.textContent = st === 'live' ? '● live — new events appear on top' : `${st} ${err ? errorText(err) : ''}`; } });
  };
  main.append(
    h('div', { class: 'head' }, h('div', { class: 'title' }, h('h1', {}, 'Events'), h('div', { class: 'sub' }, 'What happens in the system, as it happens. ', live))),
    h('div', { class: 'panel row' },
      h('label', {}, 'Types (none: all)'), types,
      h('div', {}, h('div', { class: 'row' }, resType, resId),
        h('div', { class: 'row' }, h('button', { type: 'button', class: 'primary', onclick: start }, 'Apply'),
          h('button', { type: 'button', onclick: () => { for (const o of types.options) o.selected = false; resType.value = ''; resId.value = ''; start(); } }, 'Clear')))),
    h('div', { class: 'panel' }, feed));
  start();
  return () => w && w.close();
}
