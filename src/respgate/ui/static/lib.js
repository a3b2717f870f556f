// Shared pieces of the UI: the API client, formatting, and small accessible components.
import { html, render, useState, useEffect, useLayoutEffect, useRef, useCallback, useMemo } from './vendor/htm-preact.js';

export { html, render, useState, useEffect, useLayoutEffect, useRef, useCallback, useMemo };

const KEY = 'respgate.ui.key';
export const session = {
  get key() { return sessionStorage.getItem(KEY) || ''; },
  set key(value) { if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY); },
  onUnauthorized: () => {},
};

export class ApiError extends Error {
  constructor(message, status, param) { super(message); this.status = status; this.param = param; }
}

// A call to the gateway. `path` is relative to /ui/ ('api/models', '../key/generate'). A GET that boot.js
// already started (the page's first requests) is taken from there.
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = {};
  if (session.key) headers.Authorization = 'Bearer ' + session.key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const started = method === 'GET' ? boot.take(path, session.key) : null;
  const r = started ? await started.answer : await answer(path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  return parse(r);
}

async function answer(path, init) {
  const r = await fetch(path, init);
  return { ok: r.ok, status: r.status, statusText: r.statusText, text: await r.text() };
}

function parse(r) {
  let data = null;
  try { data = r.text ? JSON.parse(r.text) : null; } catch { data = null; }
  if (!r.ok) {
    const e = data && data.error;
    if (r.status === 401 && session.key) session.onUnauthorized();
    throw new ApiError((e && e.message) || `${r.status} ${r.statusText}`, r.status, e && e.param);
  }
  return data;
}

// Data for a component: { data, error, loading, reload }. Reloads when `key` changes. The request
// starts as soon as the component is in the DOM (a layout effect: not a frame later); an answer that
// boot.js already has is the first render's data.
export function useApi(path, key = path) {
  const early = useRef(false);  // the first render had the data already: no request for it
  const [state, setState] = useState(() => {
    const here = path && boot.ready(path, session.key);
    if (!here || !here.ok) return { data: null, error: null, loading: true };
    boot.take(path, session.key);
    early.current = true;
    return { data: parse(here), error: null, loading: false };
  });
  const [tick, setTick] = useState(0);
  useLayoutEffect(() => {
    if (!path) return undefined;
    if (early.current) { early.current = false; return undefined; }
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true, error: null }));
    api(path, { signal: ctl.signal }).then(
      (data) => setState({ data, error: null, loading: false }),
      (error) => { if (error.name !== 'AbortError') setState({ data: null, error, loading: false }); });
    return () => ctl.abort();
  }, [key, tick]);
  return { ...state, reload: useCallback(() => setTick((t) => t + 1), []) };
}

// Marks the page interactive with its data on screen (tests and bench/ui_bench.py wait on it): after the
// frame that lays out and paints the data (a task queued from requestAnimationFrame runs after its paint).
export const navigation = { count: 0 };  // app.js counts route changes: a late mark of a page left is dropped

export function useReady(page, done) {
  useLayoutEffect(() => {
    if (!done || document.documentElement.dataset.ready === page) return;
    const at = navigation.count;
    requestAnimationFrame(() => setTimeout(() => {
      if (navigation.count !== at) return;
      document.documentElement.dataset.ready = page;
      window.__uiReady = { page, ms: performance.now() };
    }, 0));
  }, [page, done]);
}

// -- routing (the hash: #/page/arg?param=value) --------------------------------------------------------

// boot.js (a classic script, run first) knows the routes and each page's first requests.
export const boot = window.__rg;

export function parseHash(hash = location.hash) {
  return boot.route(hash);
}

export function href(page, arg, params) {
  const q = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v != null)).toString() : '';
  return `#/${page}${arg ? '/' + encodeURIComponent(arg) : ''}${q ? '?' + q : ''}`;
}

// -- formatting --------------------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, '0');
export function when(epoch) {
  if (epoch == null) return '—';
  const d = new Date(epoch * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
export function usd(x) {
  if (x == null) return '—';
  if (x === 0) return '$0';
  const digits = Math.abs(x) >= 1 ? 2 : Math.min(8, 2 - Math.floor(Math.log10(Math.abs(x))) + 1);
  return '$' + x.toFixed(digits);
}
export const num = (n) => (n == null ? '—' : Number(n).toLocaleString('en-US'));
export const ms = (x) => (x == null ? '—' : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${Math.round(x)} ms`);
export const short = (id, n = 22) => (id && id.length > n ? id.slice(0, n) + '…' : id || '—');

// -- components --------------------------------------------------------------------------------------

export function Status({ status }) {
  return html`<span class=${'status status-' + (status || 'unknown')}>${status || 'unknown'}</span>`;
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message || String(error)}</p>`;
}

export function Loading({ what = 'Loading' }) {
  return html`<p class="muted" role="status">${what}…</p>`;
}

export function Field({ id, label, hint, children }) {
  return html`<div class="field"><label for=${id}>${label}</label>${children}${hint && html`<small id=${id + '-hint'} class="muted">${hint}</small>`}</div>`;
}

// A modal dialog (the browser's own: focus kept inside, Escape closes, focus returns after).
export function Dialog({ title, onClose, children, id = 'dialog' }) {
  const ref = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => { if (d && d.open) d.close(); };
  }, []);
  return html`<dialog ref=${ref} aria-labelledby=${id + '-title'} onClose=${onClose} onCancel=${(e) => { e.preventDefault(); onClose(); }}>
    <h2 id=${id + '-title'}>${title}</h2>${children}</dialog>`;
}

export function CopyButton({ text, label = 'Copy' }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try { await navigator.clipboard.writeText(text); setDone(true); } catch { setDone(false); }
  };
  return html`<button type="button" class="small" onClick=${copy}>${done ? 'Copied' : label}</button>`;
}

// Horizontal bars: one list item per group, its SVG bar the value's share of the largest.
export function Bars({ bars, value, format, caption }) {
  const max = Math.max(0, ...bars.map((b) => b[value] || 0)) || 1;
  return html`<figure class="chart"><figcaption class="sr-only">${caption}</figcaption>
    <ol class="bars">
      ${bars.map((b, i) => html`<li key=${b.label + i}>
        <span class="bar-name" title=${b.label}>${b.label}</span>
        <svg viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" class="bar-track">
          <rect width=${Math.max(((b[value] || 0) / max) * 100, b[value] ? 0.5 : 0)} height="10" class="bar" /></svg>
        <span class="bar-value">${format(b[value])}</span></li>`)}
    </ol></figure>`;
}

// Vertical columns over time (the spend by day), labelled every few columns.
export function Columns({ bars, value, format, caption }) {
  const max = Math.max(0, ...bars.map((b) => b[value] || 0)) || 1;
  const w = 1000 / Math.max(bars.length, 1);
  const every = Math.ceil(bars.length / 10);
  return html`<figure class="chart">
    <svg viewBox="0 0 1000 220" class="columns" role="img" aria-label=${caption}>
      <line x1="0" y1="190" x2="1000" y2="190" class="axis" />
      ${bars.map((b, i) => {
        const h = ((b[value] || 0) / max) * 170;
        return html`<g key=${b.id}>
          <title>${b.label}: ${format(b[value])}</title>
          <rect x=${i * w + w * 0.15} y=${190 - h} width=${w * 0.7} height=${h} class="bar" />
          ${i % every === 0 && html`<text x=${i === 0 ? 0 : i * w + w / 2} y="210" text-anchor=${i === 0 ? 'start' : 'middle'} class="tick">${b.label.slice(5)}</text>`}
        </g>`;
      })}
    </svg>
  </figure>`;
}

// <details> whose content (a function: children) is made only once opened: a long stream's events or a
// big JSON cost nothing until someone looks.
export function Lazy({ summary, children, className }) {
  const [open, setOpen] = useState(false);
  const make = Array.isArray(children) ? children[0] : children;
  return html`<details class=${className} onToggle=${(e) => setOpen(e.currentTarget.open)}><summary>${summary}</summary>${open && make()}</details>`;
}

export function Json({ value, label = 'JSON' }) {
  return html`<${Lazy} className="json" summary=${label}>${() => html`<pre>${JSON.stringify(value, null, 2)}</pre>`}</${Lazy}>`;
}
