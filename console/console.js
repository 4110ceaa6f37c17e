// The operator console: the journal's entries, one in detail, and the operator actions, through the
// gateway's authenticated API (README "HTTP API"). Every value is written with textContent.
'use strict';

const STATES = ['received', 'unwrapped', 'extracted', 'converted', 'identified', 'resolved', 'delivered', 'quarantined', 'failed'];
const TOKEN_KEY = 'passerelle.console.token';
const PAGE = 50;

const $ = (id) => document.getElementById(id);
const view = { state: null, oldest: null, selected: null };

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** The API with the admin token; throws an Error whose message is the catalogue code and text. */
async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${token()}` } });
  if (res.status === 401) {
    logout('Jeton refusé.');
    throw new Error('AUTH_REQUIRED');
  }
  if (!res.ok) {
    let code = `HTTP ${res.status}`;
    try {
      const outcome = await res.json();
      const issue = outcome.issue && outcome.issue[0];
      code = `${issue.details.coding[0].code}: ${issue.diagnostics || ''}`;
    } catch {
      // not an OperationOutcome
    }
    throw new Error(code);
  }
  return res;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const cell of cells) tr.append(cell instanceof Node ? wrap(cell) : el('td', cell ?? ''));
  return tr;
}

function wrap(node) {
  const td = document.createElement('td');
  td.append(node);
  return td;
}

function pairs(dl, entries) {
  dl.replaceChildren();
  for (const [term, value] of entries) {
    if (value === undefined || value === null || value === '') continue;
    dl.append(el('dt', term), el('dd', value));
  }
}

const when = (iso) => (iso ? new Date(iso).toLocaleString('fr-FR') : '');

// --- list ----------------------------------------------------------------------------------

async function loadList(append = false) {
  $('list-error').textContent = '';
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (view.state) params.set('state', view.state);
  if (append && view.oldest) params.set('before', view.oldest);
  try {
    const body = await (await api(`/messages?${params}`)).json();
    renderStates(body.counts || {});
    const tbody = $('entries').tBodies[0];
    if (!append) tbody.replaceChildren();
    for (const e of body.entries) {
      const tr = row([when(e.createdAt), e.door, e.submitter, e.kind, el('span', e.state, `state-${e.state}`), e.errorCode || '', e.attempts]);
      tr.dataset.id = e.id;
      tr.tabIndex = 0;
      tr.addEventListener('click', () => void openEntry(e.id));
      tr.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter') void openEntry(e.id);
      });
      tbody.append(tr);
    }
    view.oldest = body.entries.length ? body.entries[body.entries.length - 1].id : view.oldest;
    $('older').hidden = body.entries.length < PAGE;
  } catch (err) {
    $('list-error').textContent = err.message;
  }
}

function renderStates(counts) {
  const nav = $('states');
  nav.replaceChildren();
  const total = STATES.reduce((n, s) => n + (counts[s] || 0), 0);
  for (const s of [null, ...STATES]) {
    const button = el('button', `${s || 'tous'} (${s ? counts[s] || 0 : total})`);
    button.type = 'button';
    button.dataset.state = s || '';
    button.setAttribute('aria-pressed', String(view.state === s));
    button.addEventListener('click', () => {
      view.state = s;
      view.oldest = null;
      void loadList();
    });
    nav.append(button);
  }
}

// --- one entry -----------------------------------------------------------------------------

async function openEntry(id) {
  view.selected = id;
  for (const tr of $('entries').tBodies[0].rows) tr.setAttribute('aria-selected', String(tr.dataset.id === id));
  $('action-result').textContent = '';
  try {
    const [entry, mail] = await Promise.all([
      api(`/messages/${id}`).then((r) => r.json()),
      api(`/messages/${id}/mail`).then((r) => r.json()),
    ]);
    renderEntry(entry, mail);
  } catch (err) {
    $('action-result').textContent = err.message;
  }
}

function renderEntry(entry, mail) {
  $('detail').hidden = false;
  $('d-id').textContent = entry.id;
  pairs($('d-summary'), [['État', entry.state], ['Reçu le', when(entry.receivedAt)], ['Essais', entry.attempts]]);

  $('d-error').hidden = !entry.errorCode;
  $('d-code').textContent = entry.errorCode || '';
  const catalogueMessage = mail.error ? mail.error.message : '';
  $('d-message').textContent = catalogueMessage;
  $('d-detail').textContent = entry.error && entry.error !== catalogueMessage ? entry.error : '';

  const h = mail.header;
  const xdm = h && h.xdm;
  const m = (entry.result && entry.result.mail) || {};
  pairs($('d-mail'), h ? [
    ['De', h.from], ['À', h.to], ['Date', h.date], ['Message-ID', h.messageId], ['Objet', h.subject],
    ['Objet XDM', xdm ? `XDM/${xdm.version}/DDM` : 'ne suit pas XDM/1.0/DDM+…'],
    ['Libellé et patient', xdm && xdm.labelAndName], ['Date de naissance', xdm && xdm.birthDate],
    ['Accusé KO', xdm && xdm.koCode], ['Accusé de lecture demandé à', h.dispositionNotificationTo],
    ['X-MSS-CODECDA', h.mss.codeCda.join(', ')], ['X-MSS-INS', h.mss.ins],
    ['Signé par', m.signer], ['Chiffré', m.encrypted === undefined ? null : m.encrypted ? 'oui' : 'non'],
  ] : [['Nature', 'document reçu par HTTP']]);

  const docs = (entry.result && entry.result.documents) || [];
  $('d-documents').hidden = docs.length === 0;
  $('d-documents').tBodies[0].replaceChildren(...docs.map((d) => row([
    d.source, d.documentType, d.identity ? d.identity.status : '', d.routing ? d.routing.dac.name || d.routing.dac.reference : '', d.bundle || '',
  ])));
  const warnings = (entry.result && entry.result.mssWarnings) || [];
  $('d-warnings').replaceChildren(...warnings.map((w) => el('li', `${w.header} déclare ${w.declared}, le document dit ${w.found}`)));

  $('d-history').tBodies[0].replaceChildren(...entry.history.map((e) => row([
    when(e.at), e.stage || '', e.outcome, e.state, e.durationMs ?? '', e.errorCode || '', e.detail || '', e.actor || '',
  ])));
  $('release').hidden = !(entry.state === 'quarantined' && mail.error && mail.error.releasable);
}

async function act(action) {
  const id = view.selected;
  const reason = $('reason').value.trim();
  try {
    const res = await api(`/messages/${id}/$${action}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(reason ? { reason } : {}),
    });
    const body = await res.json();
    $('reason').value = '';
    await loadList();
    await openEntry(id);
    $('action-result').textContent = `${action === 'replay' ? 'Rejouée' : 'Libérée'} : ${body.state}`;
  } catch (err) {
    $('action-result').textContent = err.message;
  }
}

async function downloadRaw() {
  const id = view.selected;
  try {
    const blob = await (await api(`/messages/${id}/raw`)).blob();
    const a = el('a');
    a.href = URL.createObjectURL(blob);
    a.download = `${id}.eml`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  } catch (err) {
    $('action-result').textContent = err.message;
  }
}

// --- session -------------------------------------------------------------------------------

function logout(message = '') {
  sessionStorage.removeItem(TOKEN_KEY);
  $('app').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
}

async function login(candidate) {
  sessionStorage.setItem(TOKEN_KEY, candidate);
  const res = await fetch('/messages?limit=1', { headers: { Authorization: `Bearer ${candidate}` } });
  if (!res.ok) {
    logout(res.status === 403 ? 'Ce jeton n’est pas celui d’un administrateur.' : 'Jeton refusé.');
    return;
  }
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  await loadList();
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = $('token').value.trim();
    $('token').value = '';
    void login(value);
  });
  $('logout').addEventListener('click', () => logout());
  $('older').addEventListener('click', () => void loadList(true));
  $('replay').addEventListener('click', () => void act('replay'));
  $('release').addEventListener('click', () => void act('release'));
  $('raw').addEventListener('click', () => void downloadRaw());
  if (token()) void login(token());
  else logout();
});
