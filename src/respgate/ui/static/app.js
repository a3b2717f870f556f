// The UI's shell: login, the header and its navigation, and the hash router.
import { html, render, useState, useEffect, useRef, useMemo, api, session, parseHash, navigation, ErrorNote } from './lib.js';
import { Responses, ResponseDetail } from './pages/responses.js';
import { Keys } from './pages/keys.js';
import { Spend } from './pages/spend.js';
import { Models } from './pages/models.js';
import { Playground } from './pages/playground.js';

const PAGES = [
  ['responses', 'Responses'],
  ['keys', 'Keys & teams'],
  ['spend', 'Spend'],
  ['models', 'Models'],
  ['playground', 'Playground'],
];

function Login({ onLogin, reason }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState(reason ? new Error(reason) : null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    session.key = key.trim();
    try {
      onLogin(await api('api/session'));
    } catch (err) {
      session.key = '';
      setError(err.status === 403 ? new Error('This key is not an admin key: use the master key or a key of a proxy_admin user.')
        : err.status === 401 ? new Error('This key is not valid.') : err);
    } finally {
      setBusy(false);
    }
  };
  return html`<main id="main" class="login">
    <h1>respgate admin</h1>
    <form onSubmit=${submit} aria-describedby="login-help">
      <p id="login-help" class="muted">Log in with the master key or an admin virtual key. It stays in this tab only (sessionStorage).</p>
      <div class="field"><label for="login-key">Master key or admin key</label>
        <input id="login-key" type="password" autocomplete="off" spellcheck="false" required value=${key}
          onInput=${(e) => setKey(e.target.value)} autofocus /></div>
      <${ErrorNote} error=${error} />
      <button type="submit" disabled=${busy}>${busy ? 'Checking…' : 'Log in'}</button>
    </form>
  </main>`;
}

function Page({ route, me }) {
  switch (route.page) {
    case 'responses': return route.arg ? html`<${ResponseDetail} id=${route.arg} />` : html`<${Responses} params=${route.params} />`;
    case 'keys': return html`<${Keys} me=${me} />`;
    case 'spend': return html`<${Spend} params=${route.params} />`;
    case 'models': return html`<${Models} />`;
    case 'playground': return html`<${Playground} params=${route.params} />`;
    default: return html`<h1 tabindex="-1">Not found</h1><p>No page here. <a href="#/responses">Go to Responses</a>.</p>`;
  }
}

function Shell({ me, onLogout }) {
  const [route, setRoute] = useState(parseHash());
  const first = useRef(true);
  useEffect(() => {
    const onHash = () => { navigation.count += 1; document.documentElement.dataset.ready = ''; setRoute(parseHash()); };
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  // The same element while the route stays: the session's answer re-renders the header, not the page.
  const page = useMemo(() => html`<${Page} route=${route} me=${me} key=${route.page + '/' + (route.arg || '')} />`,
    [route, me.auth]);
  useEffect(() => {  // a new page: focus its heading, so keyboard and screen reader users start there
    if (first.current) { first.current = false; return; }
    const h1 = document.querySelector('main h1');
    if (h1) h1.focus();
  }, [route.page, route.arg]);
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById('main').focus(); }}>Skip to content</a>
    <header class="top">
      <span class="brand">respgate</span>
      <nav aria-label="Main"><ul>
        ${PAGES.map(([page, label]) => html`<li key=${page}><a href=${'#/' + page} aria-current=${route.page === page ? 'page' : null}>${label}</a></li>`)}
      </ul></nav>
      <span class="who">${me.who}${me.version ? html` · v${me.version}` : ''}</span>
      ${me.auth && html`<button type="button" class="small secondary" onClick=${onLogout}>Log out</button>`}
    </header>
    <main id="main" tabindex="-1">${page}</main>`;
}

function App() {
  // With a key from this tab's session the page renders at once (its data requests run beside the
  // session check; a refused key brings back the login form); without one, a proxy without keys lets us in.
  const [me, setMe] = useState(session.key ? { who: '…', auth: true } : null);
  const [reason, setReason] = useState(null);
  const [checking, setChecking] = useState(!session.key);
  useEffect(() => {
    session.onUnauthorized = () => { session.key = ''; setMe(null); setReason('Your session ended: log in again.'); };
    api('api/session').then(setMe, (err) => {
      session.key = '';
      setMe(null);
      if (err.status === 403) setReason('This key is not an admin key: use the master key or a key of a proxy_admin user.');
    }).finally(() => setChecking(false));
  }, []);
  if (checking) return html`<p class="boot" role="status">Loading…</p>`;
  if (!me) return html`<${Login} reason=${reason} onLogin=${(m) => { setReason(null); setMe(m); }} />`;
  return html`<${Shell} me=${me} onLogout=${() => { session.key = ''; setMe(null); setReason(null); }} />`;
}

const root = document.getElementById('app');
root.textContent = '';  // the boot message
render(html`<${App} />`, root);
window.__uiShell = performance.now();  // the page's controls work from here (bench/ui_bench.py reads it)
