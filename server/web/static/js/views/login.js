// Login: the API token is kept in the browser (session, or local when
// "remember" is ticked) and sent as "Authorization: Bearer".

import { get, token } from '../api.js';
import { h } from '../dom.js';
import { navigate } from '../app.js';

export function loginView(main) {
  const params = new URLSearchParams(location.search);
  const input = h('input', { type: 'password', id: 'token', name: 'token', placeholder: 'API token', autocomplete: 'current-password', required: true });
  const remember = h('input', { type: 'checkbox', id: 'remember' });
  const msg = h('p', { class: 'error', id: 'login-error' }, params.get('expired') ? 'The server refused the token; log in again.' : '');
  const submit = async (e) => {
    e.preventDefault();
    msg.textContent = '';
    token.set(input.value.trim(), remember.checked);
    try {
      await get('/v1/pipelines?page_size=1');
    } catch (err) {
      token.clear();
      msg.textContent = err.httpStatus === 401 ? 'Invalid token.' : `Cannot log in: ${err.message}`;
      return;
    }
    let next = params.get('next') || '/pipelines';
    if (!next.startsWith('/') || next.startsWith('//') || next.startsWith('/login')) next = '/pipelines';
    navigate(next, true);
  };
  // Where the token is: the server's generated credentials file when it
  // holds the token the server takes, else its configuration.
  const hint = h('p', { class: 'note', dataset: { testid: 'login-hint' } },
    'Paste an API token: api_token or one of api_tokens in the server configuration, or the ARCADE_API_TOKEN the server was started with.');
  fetch('/login-hint.json').then((r) => (r.ok ? r.json() : {})).then((j) => {
    if (j.credentials_file) {
      hint.replaceChildren('Paste an API token. This server generated its token: ARCADE_API_TOKEN in ',
        h('code', {}, j.credentials_file), ' on the server.');
    }
  }, () => {});
  main.append(h('div', { class: 'login' },
    h('form', { class: 'panel', onsubmit: submit },
      h('h1', {}, 'Log in to Arcade'),
      hint,
      input,
      h('div', { class: 'row' }, h('label', {}, remember, ' remember on this browser'), h('span', { class: 'spacer' }),
        h('button', { class: 'primary', type: 'submit' }, 'Log in')),
      msg)));
  input.focus();
}
