// Playground: send a request to any model through /v1/responses and watch its stream event by event.
import { html, useState, useRef, useEffect, session, useApi, useReady, href, num, short, ErrorNote, ApiError } from '../lib.js';

// Server-sent events from a fetch body: calls onEvent(obj) for each `data:` frame, in order.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (data && data !== '[DONE]') onEvent(JSON.parse(data));
    }
  }
}

function delta(e) {
  if (typeof e.delta === 'string') return e.delta;
  if (e.response) return e.response.status;
  if (e.item) return e.item.type;
  return '';
}

export function Playground({ params }) {
  const models = useApi('api/models');
  const names = models.data ? models.data.groups.filter((g) => !g.wildcard).map((g) => g.name) : [];
  // model: null until typed, shown as the first group meanwhile (no effect that could overwrite typing)
  const [form, setForm] = useState({ model: params.model || null, input: '', instructions: '', previous: params.previous || '', max: '', stream: true });
  const [events, setEvents] = useState([]);
  const [output, setOutput] = useState('');
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [running, setRunning] = useState(false);
  const abort = useRef(null);
  const pending = useRef([]);
  const frame = useRef(0);
  useReady('playground', !models.loading);
  useEffect(() => () => { if (abort.current) abort.current.abort(); cancelAnimationFrame(frame.current); }, []);

  // Events arrive faster than frames: show them once per frame, each one still listed.
  const flush = () => {
    frame.current = 0;
    const batch = pending.current;
    pending.current = [];
    if (!batch.length) return;
    setEvents((list) => list.concat(batch));
    const text = batch.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
    if (text) setOutput((o) => o + text);
  };
  const onEvent = (e) => {
    pending.current.push(e);
    if (!frame.current) frame.current = requestAnimationFrame(flush);
    if (e.response && ['response.completed', 'response.failed', 'response.incomplete'].includes(e.type)) setResult(e.response);
  };

  const model = form.model ?? names[0] ?? '';
  const set = (name) => (e) => {
    const value = e.target.type === 'checkbox' ? e.target.checked : e.target.value;
    setForm((f) => ({ ...f, [name]: value }));
  };
  const send = async (e) => {
    e.preventDefault();
    setEvents([]); setOutput(''); setResult(null); setError(null); setRunning(true);
    const body = { model, input: form.input, stream: form.stream };
    if (form.instructions.trim()) body.instructions = form.instructions;
    if (form.previous.trim()) body.previous_response_id = form.previous.trim();
    if (form.max) body.max_output_tokens = parseInt(form.max, 10);
    const ctl = new AbortController();
    abort.current = ctl;
    try {
      const headers = { 'Content-Type': 'application/json' };
      if (session.key) headers.Authorization = 'Bearer ' + session.key;
      const r = await fetch('../v1/responses', { method: 'POST', headers, body: JSON.stringify(body), signal: ctl.signal });
      if (!r.ok) {
        const data = await r.json().catch(() => null);
        throw new ApiError((data && data.error && data.error.message) || `${r.status} ${r.statusText}`, r.status);
      }
      if (form.stream) await readEvents(r, onEvent);
      else { const resp = await r.json(); setResult(resp); setOutput(resp.output_text || (resp.output || []).flatMap((i) => i.content || []).map((c) => c.text || '').join('')); }
    } catch (err) {
      if (err.name !== 'AbortError') setError(err);
    } finally {
      flush();
      setRunning(false);
      abort.current = null;
    }
  };
  const stop = () => { if (abort.current) abort.current.abort(); };
  const cont = () => setForm((f) => ({ ...f, previous: result.id, input: '' }));

  return html`<h1 tabindex="-1">Playground</h1>
    <form class="card grid-form" onSubmit=${send} aria-label="Request">
      <div class="field"><label for="p-model">Model</label>
        <input id="p-model" list="p-models" required value=${model} onInput=${set('model')} />
        <datalist id="p-models">${names.map((n) => html`<option key=${n} value=${n} />`)}</datalist></div>
      <div class="field"><label for="p-previous">Previous response id</label>
        <input id="p-previous" class="mono" value=${form.previous} onInput=${set('previous')} placeholder="none: a new chain" /></div>
      <div class="field"><label for="p-max">Max output tokens</label>
        <input id="p-max" type="number" min="1" step="1" value=${form.max} onInput=${set('max')} placeholder="model default" /></div>
      <div class="field check"><input id="p-stream" type="checkbox" checked=${form.stream} onChange=${set('stream')} /><label for="p-stream">Stream</label></div>
      <div class="field wide"><label for="p-instructions">Instructions</label>
        <textarea id="p-instructions" rows="2" value=${form.instructions} onInput=${set('instructions')}></textarea></div>
      <div class="field wide"><label for="p-input">Input</label>
        <textarea id="p-input" rows="4" required value=${form.input} onInput=${set('input')}></textarea></div>
      <div class="actions wide"><button type="submit" disabled=${running}>Send</button>
        <button type="button" class="secondary" onClick=${stop} disabled=${!running}>Stop</button></div>
    </form>
    <${ErrorNote} error=${error || models.error} />
    <p class="sr-only" role="status">${running ? 'Streaming the response' : result ? `Done: ${events.length} events` : ''}</p>
    <section aria-labelledby="p-out-h" class="card">
      <h2 id="p-out-h">Output ${running ? html`<span class="muted">(streaming…)</span>` : ''}</h2>
      <p id="p-output" class="text output">${output || html`<span class="muted">Nothing yet.</span>`}</p>
      ${result && html`<p id="p-result">Response <a class="mono" href=${href('responses', result.id)}>${short(result.id, 30)}</a> ·
        <span class=${'status status-' + result.status}>${result.status}</span> · ${num(result.usage && result.usage.total_tokens)} tokens${' '}
        <button type="button" class="small secondary" onClick=${cont}>Continue this chain</button></p>`}
    </section>
    <section aria-labelledby="p-ev-h" class="card">
      <h2 id="p-ev-h">Events <span class="muted">(${events.length})</span></h2>
      <ol class="events" id="p-events">${events.map((e, i) => html`<li key=${i}><span class="num">${e.sequence_number ?? i}</span> <code>${e.type}</code> <span class="clip">${delta(e)}</span></li>`)}</ol>
    </section>`;
}
