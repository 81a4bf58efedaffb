// Access: stored secrets (values are write-only: typed into a password
// field or read from a file, sent once, never shown or fetched back), named
// API tokens (a new token is shown once) and the audit log.

import { call, get, post, patch, query } from '../api.js';
import { h, fmtTime, ago, errorText, toast, clear } from '../dom.js';

const SCOPES = { global: 'SECRET_SCOPE_GLOBAL', pipeline: 'SECRET_SCOPE_PIPELINE', source: 'SECRET_SCOPE_SOURCE' };

function scopeName(s) { return (s || 'SECRET_SCOPE_GLOBAL').replace('SECRET_SCOPE_', '').toLowerCase(); }

// secretPath addresses one secret: its name in the path, scope and target
// in the query.
function secretPath(s) {
  return `/v1/secrets/${encodeURIComponent(s.name)}` + query({ scope: s.scope, target: s.target || undefined });
}

// valueField is a write-only value: a password field (never filled from
// the server) and a file picker that loads a file into it.
function valueField(id) {
  const input = h('input', { type: 'password', id, autocomplete: 'new-password', spellcheck: 'false', placeholder: 'value (write-only)' });
  const file = h('input', { type: 'file', title: 'read the value from a file', onchange: async () => {
    if (file.files[0]) input.value = (await file.files[0].text()).replace(/\r?\n$/, '');
    file.value = '';
  } });
  return { input, el: h('span', { class: 'row' }, input, file) };
}

export function secretsView(main) {
  const body = h('tbody');
  const name = h('input', { id: 'secret-name', placeholder: 'NAME', autocomplete: 'off', spellcheck: 'false' });
  const scope = h('select', { id: 'secret-scope' }, Object.keys(SCOPES).map((k) => h('option', { value: SCOPES[k] }, k)));
  const target = h('input', { id: 'secret-target', placeholder: 'pipeline name or repository URL', disabled: true });
  scope.addEventListener('change', () => { target.disabled = scope.value === SCOPES.global; if (target.disabled) target.value = ''; });
  const value = valueField('secret-value');
  const description = h('input', { id: 'secret-description', placeholder: 'what it is for' });
  const msg = h('p', { class: 'error', id: 'secret-error' });
  const form = h('form', { class: 'panel', id: 'secret-form', onsubmit: async (e) => {
    e.preventDefault();
    msg.textContent = '';
    const body = { name: name.value.trim(), scope: scope.value, target: target.value.trim(), value: value.input.value, description: description.value };
    try {
      await post('/v1/secrets', body);
      toast(`Secret ${body.name} created`);
      name.value = ''; description.value = '';
      load();
    } catch (err) {
      msg.textContent = errorText(err);
    } finally {
      value.input.value = ''; // never kept on the page
    }
  } },
  h('div', { class: 'row' }, name, scope, target),
  h('div', { class: 'row' }, value.el, description, h('button', { type: 'submit', class: 'primary', id: 'create-secret' }, 'Create')),
  msg);
  main.append(
    h('div', { class: 'head' },
      h('div', { class: 'title' }, h('h1', {}, 'Secrets'),
        h('div', { class: 'sub' }, 'Sealed at rest, never shown again. Jobs get them as env by name (secrets: in a pipeline), masked in their logs.'))),
    form,
    h('table', { dataset: { testid: 'secrets' } },
      h('thead', {}, h('tr', {}, ['Name', 'Scope', 'Version', 'Updated', 'Key', 'Description', ''].map((t) => h('th', {}, t)))),
      body));
  const load = async () => {
    let r;
    try { r = await get('/v1/secrets' + query({ page_size: 500 })); } catch (err) {
      clear(body).append(h('tr', {}, h('td', { colspan: 7, class: 'error' }, errorText(err))));
      return;
    }
    clear(body);
    const list = r.secrets || [];
    if (!list.length) body.append(h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No secret yet.')));
    for (const s of list) {
      body.append(h('tr', { dataset: { secret: s.name, scope: scopeName(s.scope), version: s.version } },
        h('td', {}, h('strong', { class: 'mono' }, s.name)),
        h('td', {}, scopeName(s.scope), s.target ? h('span', { class: 'note' }, ` ${s.target}`) : ''),
        h('td', { class: 'num' }, s.version),
        h('td', {}, h('span', { title: fmtTime(s.updated_at) }, ago(s.updated_at)), s.updated_by ? h('span', { class: 'note' }, ` by ${s.updated_by}`) : ''),
        h('td', { class: 'mono' }, s.key_id || ''),
        h('td', {}, s.description || ''),
        h('td', {},
          h('button', { type: 'button', dataset: { rotate: s.name }, onclick: () => rotateDialog(s, load) }, 'Rotate'), ' ',
          h('button', { type: 'button', dataset: { remove: s.name }, onclick: async () => {
            if (!confirm(`Delete secret ${s.name}? Pipelines that use it fail their next runs.`)) return;
            try { await call('DELETE', secretPath(s)); toast(`Secret ${s.name} deleted`); load(); } catch (err) { toast(errorText(err), true); }
          } }, 'Delete'))));
    }
  };
  load();
}

function dialog(title, ...content) {
  const d = h('dialog', {}, h('h1', {}, title), ...content);
  document.body.append(d);
  d.addEventListener('close', () => d.remove());
  d.showModal();
  return d;
}

function rotateDialog(s, done) {
  const value = valueField('rotate-value');
  const msg = h('p', { class: 'error' });
  const d = dialog(`New value for ${s.name}`,
    h('p', { class: 'note' }, 'Jobs handed out from now on get the new value.'), value.el, msg,
    h('div', { class: 'row' }, h('span', { class: 'spacer' }),
      h('button', { type: 'button', onclick: () => { value.input.value = ''; d.close(); } }, 'Cancel'),
      h('button', { type: 'button', class: 'primary', id: 'rotate-secret', onclick: async () => {
        try {
          await patch(`/v1/secrets/${encodeURIComponent(s.name)}`, { scope: s.scope, target: s.target, value: value.input.value });
          value.input.value = '';
          d.close();
          toast(`Secret ${s.name} rotated`);
          done();
        } catch (err) { msg.textContent = errorText(err); }
      } }, 'Save')));
}

function tokenScope(s) { return (s || '').replace('TOKEN_SCOPE_', '').toLowerCase(); }

export function tokensView(main) {
  const body = h('tbody');
  const name = h('input', { id: 'token-name', placeholder: 'name', autocomplete: 'off' });
  const owner = h('input', { id: 'token-owner', placeholder: 'owner' });
  const scope = h('select', { id: 'token-scope' }, ['read', 'write', 'admin'].map((s) => h('option', { value: 'TOKEN_SCOPE_' + s.toUpperCase() }, s)));
  const hours = h('input', { id: 'token-hours', type: 'number', min: '0', placeholder: 'expires in hours (0: never)' });
  const shown = h('div', { id: 'token-shown' });
  const msg = h('p', { class: 'error' });
  const form = h('form', { class: 'panel', onsubmit: async (e) => {
    e.preventDefault();
    msg.textContent = '';
    clear(shown);
    const req = { name: name.value.trim(), owner: owner.value, scope: scope.value };
    if (Number(hours.value) > 0) req.expires_in = `${Number(hours.value) * 3600}s`;
    try {
      const r = await post('/v1/tokens', req);
      const out = h('input', { readonly: true, class: 'mono', id: 'new-token', value: r.secret, onclick: () => out.select() });
      shown.append(h('p', { class: 'note' }, `Token ${r.token.name}: copy it now, it is not shown again.`), out);
      name.value = '';
      load();
    } catch (err) { msg.textContent = errorText(err); }
  } },
  h('div', { class: 'row' }, name, owner, scope, hours, h('button', { type: 'submit', class: 'primary', id: 'create-token' }, 'Create')), msg, shown);
  main.append(
    h('div', { class: 'head' }, h('div', { class: 'title' }, h('h1', {}, 'API tokens'),
      h('div', { class: 'sub' }, 'Named tokens with a scope and an expiry; a revoked token is refused at once. Tokens from server.yaml are not listed.'))),
    form,
    h('table', { dataset: { testid: 'tokens' } },
      h('thead', {}, h('tr', {}, ['Name', 'Scope', 'Owner', 'State', 'Expires', 'Last used', 'Created by', ''].map((t) => h('th', {}, t)))),
      body));
  const load = async () => {
    let r;
    try { r = await get('/v1/tokens' + query({ include_inactive: true, page_size: 500 })); } catch (err) {
      clear(body).append(h('tr', {}, h('td', { colspan: 8, class: 'error' }, errorText(err))));
      return;
    }
    clear(body);
    for (const t of r.tokens || []) {
      const state = t.revoked_at ? `revoked by ${t.revoked_by}` : (t.active ? 'active' : 'expired');
      body.append(h('tr', { dataset: { token: t.name, state: t.active ? 'active' : 'inactive' } },
        h('td', {}, h('strong', {}, t.name)), h('td', {}, tokenScope(t.scope)), h('td', {}, t.owner || ''), h('td', {}, state),
        h('td', {}, t.expires_at ? fmtTime(t.expires_at) : 'never'), h('td', {}, t.last_used_at ? ago(t.last_used_at) : '—'),
        h('td', {}, t.created_by || ''),
        h('td', {}, t.active ? h('button', { type: 'button', dataset: { revoke: t.name }, onclick: async () => {
          if (!confirm(`Revoke token ${t.name}? It is refused at once.`)) return;
          try { await post(`/v1/tokens/${encodeURIComponent(t.id)}:revoke`); toast(`Token ${t.name} revoked`); load(); } catch (err) { toast(errorText(err), true); }
        } }, 'Revoke') : '')));
    }
    if (!(r.tokens || []).length) body.append(h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No named token yet.')));
  };
  load();
}

export function auditView(main) {
  const body = h('tbody');
  const actor = h('input', { id: 'audit-actor', placeholder: 'who (token name)' });
  const method = h('input', { id: 'audit-method', placeholder: 'what (e.g. Secret, CancelJob)' });
  const load = async () => {
    let r;
    try { r = await get('/v1/audit' + query({ actor: actor.value.trim() || undefined, method: method.value.trim() || undefined, page_size: 200 })); } catch (err) {
      clear(body).append(h('tr', {}, h('td', { colspan: 6, class: 'error' }, errorText(err))));
      return;
    }
    clear(body);
    for (const e of r.events || []) {
      body.append(h('tr', { dataset: { actor: e.actor, outcome: e.outcome } },
        h('td', {}, fmtTime(e.time)), h('td', {}, h('strong', {}, e.actor)),
        h('td', { class: 'mono' }, (e.method || '').replace(/^arcade\.[a-z]+\.v1\./, '')),
        h('td', { class: 'mono' }, e.resource || ''), h('td', {}, e.peer || ''),
        h('td', {}, e.outcome, e.message ? h('div', { class: 'note' }, e.message) : '')));
    }
    if (!(r.events || []).length) body.append(h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'Nothing recorded.')));
  };
  main.append(
    h('div', { class: 'head' }, h('div', { class: 'title' }, h('h1', {}, 'Audit log'),
      h('div', { class: 'sub' }, 'Every write through the API and every webhook run: who, what, when, from where. Newest first.'))),
    h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); load(); } }, actor, method, h('button', { type: 'submit' }, 'Filter')),
    h('table', { dataset: { testid: 'audit' } },
      h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'On', 'From', 'Outcome'].map((t) => h('th', {}, t)))),
      body));
  load();
}
