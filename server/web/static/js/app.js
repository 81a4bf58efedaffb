// The dashboard: a small router over the views; each view renders into main
// and returns a function that closes its streams.

import { token, onUnauthorized } from './api.js';
import { clear, h } from './dom.js';
import { loginView } from './views/login.js';
import { pipelinesView, pipelineView } from './views/pipelines.js';
import { runView } from './views/run.js';
import { jobView } from './views/job.js';
import { agentsView } from './views/agents.js';
import { pluginsView } from './views/plugins.js';
import { eventsView } from './views/events.js';
import { secretsView, tokensView, auditView } from './views/access.js';

const routes = [
  [/^\/login$/, loginView, ''],
  [/^\/(?:pipelines)?$/, pipelinesView, 'pipelines'],
  [/^\/pipelines\/([^/]+)$/, pipelineView, 'pipelines'],
  [/^\/runs\/([^/]+)$/, runView, 'pipelines'],
  [/^\/jobs\/([^/]+)$/, jobView, 'pipelines'],
  [/^\/agents$/, agentsView, 'agents'],
  [/^\/plugins$/, pluginsView, 'plugins'],
  [/^\/events$/, eventsView, 'events'],
  [/^\/secrets$/, secretsView, 'secrets'],
  [/^\/tokens$/, tokensView, 'tokens'],
  [/^\/audit$/, auditView, 'audit'],
];

const main = document.getElementById('main');
let cleanup = null;
let current = '';

export function navigate(path, replace = false) {
  if (replace) history.replaceState(null, '', path); else history.pushState(null, '', path);
  route();
}

function route() {
  const path = location.pathname;
  if (path === current && cleanup) return; // only the #fragment changed
  if (cleanup) { cleanup(); cleanup = null; }
  current = path;
  if (!token.get() && path !== '/login') {
    navigate('/login?next=' + encodeURIComponent(path + location.search + location.hash), true);
    return;
  }
  document.getElementById('logout').hidden = !token.get();
  for (const [re, view, nav] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    for (const a of document.querySelectorAll('#nav a[data-nav]')) a.classList.toggle('active', a.dataset.nav === nav);
    clear(main);
    cleanup = view(main, ...m.slice(1).map(decodeURIComponent)) || (() => {});
    return;
  }
  clear(main);
  main.append(h('div', { class: 'empty' }, 'Nothing here. ', h('a', { href: '/pipelines', 'data-link': true }, 'Back to pipelines')));
  cleanup = () => {};
}

// Links with data-link navigate in place.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-link]');
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', route);
document.getElementById('logout').addEventListener('click', () => { token.clear(); current = ''; navigate('/login'); });
onUnauthorized(() => {
  if (location.pathname === '/login') return;
  token.clear();
  current = '';
  navigate('/login?expired=1&next=' + encodeURIComponent(location.pathname), true);
});
route();
