// Events: the recent history the server keeps, then live events, filtered
// by name (core/events) and resource.

import { query, watch } from '../api.js';
import { h, errorText, clear } from '../dom.js';
import { eventItem } from './plugins.js';

// HISTORY is how many past events the page starts with.
const HISTORY = 200;

let names = null;
// eventNames loads the list of event names once.
async function eventNames() {
  if (!names) {
    const res = await fetch('/event-names.json');
    names = res.ok ? await res.json() : [];
  }
  return names;
}

export function eventsView(main) {
  const params = new URLSearchParams(location.search);
  const chosen = new Set(params.getAll('name'));
  const boxes = h('div', { class: 'names', dataset: { testid: 'event-names' } });
  const resType = h('select', { 'aria-label': 'resource type' },
    ['', 'job', 'pipeline_run', 'agent', 'plugin', 'notification'].map((r) => h('option', { value: r, selected: params.get('resource_type') === r }, r || 'any resource')));
  const resId = h('input', { type: 'text', placeholder: 'resource id', value: params.get('resource_id') || '', 'aria-label': 'resource id' });
  const feed = h('ul', { class: 'feed', dataset: { testid: 'events' } });
  const empty = h('p', { class: 'empty', dataset: { testid: 'events-empty' }, hidden: true });
  const live = h('span', { class: 'note', dataset: { testid: 'stream-state' } });
  let w = null;
  const start = () => {
    if (w) w.close();
    clear(feed);
    empty.hidden = true;
    const picked = [...boxes.querySelectorAll('input:checked')].map((b) => b.value);
    const q = { names: picked, resource_type: resType.value, resource_id: resId.value.trim() };
    history.replaceState(null, '', '/events' + query({ name: picked, resource_type: q.resource_type, resource_id: q.resource_id }));
    let first = true;
    // Each (re)connection starts with the history; a reconnection shows
    // it again rather than leave a gap.
    w = watch(() => { first = true; return '/v1/events' + query({ ...q, last: HISTORY }); }, (m) => {
      if (first) { clear(feed); first = false; }
      if (m.history_end) {
        if (!feed.children.length) {
          empty.textContent = picked.length || q.resource_type || q.resource_id
            ? 'No event matches these filters in the history the server keeps; matching events will appear here as they happen.'
            : 'No events yet. Jobs, pipeline runs, agents, plugins and notifications show up here as they happen.';
          empty.hidden = false;
        }
        return;
      }
      empty.hidden = true;
      feed.prepend(eventItem(m.event, m.past));
      while (feed.children.length > 500) feed.lastChild.remove();
    }, { onState: (st, err) => { live.textContent = st === 'live' ? '● live — the newest events on top' : `${st} ${err ? errorText(err) : ''}`; } });
  };
  main.append(
    h('div', { class: 'head' }, h('div', { class: 'title' }, h('h1', {}, 'Events'),
      h('div', { class: 'sub' }, `What happened lately (the last ${HISTORY} events the server keeps), then what happens, live. `, live))),
    h('div', { class: 'panel' },
      h('label', {}, 'Names (none ticked: all)'), boxes,
      h('div', { class: 'row' }, resType, resId,
        h('button', { type: 'button', class: 'primary', onclick: start }, 'Apply'),
        h('button', { type: 'button', onclick: () => { for (const b of boxes.querySelectorAll('input')) b.checked = false; resType.value = ''; resId.value = ''; start(); } }, 'Clear'))),
    h('div', { class: 'panel' }, empty, feed));
  eventNames().then((list) => {
    let family = '';
    let group = null;
    for (const n of list) {
      const fam = n.name.split('.')[0];
      if (fam !== family) {
        family = fam;
        group = h('fieldset', { class: 'family' }, h('legend', {}, fam));
        boxes.append(group);
      }
      group.append(h('label', { class: 'name', title: n.help },
        h('input', { type: 'checkbox', value: n.name, checked: chosen.has(n.name) }), ' ', n.name.slice(fam.length + 1)));
    }
    start();
  }, () => start());
  return () => w && w.close();
}
