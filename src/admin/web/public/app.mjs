// The postern web admin: login, the layout (navigation by the seed's menu, Email › … and Dashboard › …) and a
// hash router. Every page is a client of the public admin API (api.mjs).
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, onSessionEnded, setSession } from './api.mjs';
import { html, ErrorText } from './ui.mjs';

// The session check starts as soon as this module runs, before the first render (an effect would run it only
// after a paint): a first visit shows the login form one round trip after the script, not two.
const firstSession = api('GET', '/api/session').then((s) => s, () => null);

// The pages are loaded only when someone is logged in: the login form needs none of their code (web-admin.ts
// bundles them as chunks of their own). One promise, so a second login reuses the first load.
let pagesLoad;
const loadPages = () =>
  (pagesLoad ??= Promise.all([import('./pages-email.mjs'), import('./pages-extra.mjs'), import('./pages-ooo.mjs')]).then(([e, x, o]) => ({ ...e, ...x, ...o })));

const MENU = [
  { title: 'Dashboard', pages: [
    { path: 'overview', label: 'Overview', page: 'OverviewPage' },
    { path: 'quota', label: 'Mail quota', page: 'QuotaPage' },
    { path: 'metrics', label: 'Live metrics', page: 'MetricsPage' },
  ] },
  { title: 'Email', pages: [
    { path: 'domains', label: 'Domains', page: 'DomainsPage' },
    { path: 'addresses', label: 'Email addresses', page: 'AddressesPage' },
    { path: 'mailboxes', label: 'Mailboxes', page: 'MailboxesPage' },
    { path: 'messages', label: 'Messages', page: 'MessagesPage' },
    { path: 'queue', label: 'Queue management', page: 'QueuePage' },
    { path: 'filter', label: 'Filter', page: 'FilterPage' },
    { path: 'smtp-access', label: 'SMTP access', page: 'SmtpAccessPage' },
  ] },
  { title: 'postern', pages: [
    { path: 'directory', label: 'Directory', page: 'DirectoryPage' },
    { path: 'trace', label: 'Message trace', page: 'TracePage' },
    { path: 'orphaned', label: 'Orphaned mailboxes', page: 'OrphansPage' },
    { path: 'limits', label: 'Send limits', page: 'LimitsPage' },
    { path: 'out-of-office', label: 'Out of office', page: 'OutOfOfficePage' },
  ] },
];
const PAGES = MENU.flatMap((g) => g.pages);

const route = () => (location.hash.replace(/^#\/?/, '') || 'overview').split('?')[0];

function Login({ onLogin, notice }) {
  const [mode, setMode] = useState('password');
  const [form, setForm] = useState({ login: '', password: '', token: '' });
  const [error, setError] = useState(notice || '');
  const [busy, setBusy] = useState(false);
  const submit = async (ev) => {
    ev.preventDefault();
    setBusy(true);
    setError('');
    try {
      const s = await api('POST', '/api/session', mode === 'password' ? { login: form.login, password: form.password } : { token: form.token });
      await onLogin(s);
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="login" id="main">
    <form onSubmit=${submit} aria-labelledby="h-login">
      <h1 id="h-login">postern admin</h1>
      <p>Log in with your AD account (a member of the admin group) or an API token.</p>
      <fieldset><legend>Log in with</legend>
        <label class="check"><input type="radio" name="mode" checked=${mode === 'password'} onChange=${() => setMode('password')} /> AD account</label>
        <label class="check"><input type="radio" name="mode" checked=${mode === 'token'} onChange=${() => setMode('token')} /> API token</label>
      </fieldset>
      ${mode === 'password'
        ? html`<label for="login">User name</label><input id="login" autocomplete="username" value=${form.login} onInput=${(e) => setForm({ ...form, login: e.target.value })} required />
          <label for="password">Password</label><input id="password" type="password" autocomplete="current-password" value=${form.password} onInput=${(e) => setForm({ ...form, password: e.target.value })} required />`
        : html`<label for="token">API token</label><input id="token" type="password" autocomplete="off" value=${form.token} onInput=${(e) => setForm({ ...form, token: e.target.value })} required />`}
      <${ErrorText} id="login-error" text=${error} />
      <div class="buttons"><button type="submit" class="primary" disabled=${busy}>Log in</button></div>
    </form>
  </main>`;
}

function Layout({ session, pages, onLogout }) {
  const [path, setPath] = useState(route());
  const [menuOpen, setMenuOpen] = useState(false);
  const main = useRef(null);
  useEffect(() => {
    const on = () => {
      setPath(route());
      setMenuOpen(false);
      // Keyboard and screen-reader users land on the new page's content, not at the top of the menu.
      setTimeout(() => main.current && main.current.focus(), 0);
    };
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  const current = PAGES.find((p) => p.path === path) || PAGES[0];
  const Page = pages[current.page];
  useEffect(() => {
    document.title = `${current.label} · postern admin`;
  }, [current]);
  return html`<div class="layout">
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); main.current.focus(); }}>Skip to content</a>
    <header class="top">
      <button type="button" class="menu-toggle" aria-expanded=${menuOpen} aria-controls="nav" onClick=${() => setMenuOpen(!menuOpen)}>Menu</button>
      <span class="brand">postern</span>
      <span class="who">Logged in as <strong>${session.who}</strong></span>
      <button type="button" onClick=${onLogout}>Log out</button>
    </header>
    <nav id="nav" class=${menuOpen ? 'open' : ''} aria-label="Pages">
      ${MENU.map((g) => html`<div class="group"><h2>${g.title}</h2><ul>${g.pages.map((p) => html`<li>
        <a href=${`#/${p.path}`} aria-current=${p === current ? 'page' : undefined}>${p.label}</a></li>`)}</ul></div>`)}
    </nav>
    <main id="main" ref=${main} tabindex="-1"><${Page} key=${current.path} /></main>
  </div>`;
}

function App({ initial }) {
  const [state, setState] = useState(initial); // { session, pages } or null (logged out)
  const [notice, setNotice] = useState('');
  const use = (s) => {
    setSession(s && s.session);
    setState(s);
  };
  useEffect(() => {
    onSessionEnded(() => {
      setNotice('Your session has ended: log in again.');
      use(null);
    });
  }, []);
  const logout = async () => {
    try {
      await api('DELETE', '/api/session');
    } finally {
      setNotice('');
      use(null);
    }
  };
  const onLogin = async (session) => {
    setNotice('');
    use({ session, pages: await loadPages() });
  };
  if (!state) return html`<${Login} notice=${notice} onLogin=${onLogin} />`;
  return html`<${Layout} session=${state.session} pages=${state.pages} onLogout=${logout} />`;
}

// The page's own "Loading…" stays until the session is known (and, when logged in, the pages are loaded).
const session = await firstSession;
const initial = session ? { session, pages: await loadPages() } : null;
setSession(session);
render(html`<${App} initial=${initial} />`, document.getElementById('app'));
