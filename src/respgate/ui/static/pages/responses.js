// Responses: the searchable list, and one response with its items, events, cost and chain.
import {
  html, useState, useApi, useReady, href, boot, when, usd, num, ms, short, Status, ErrorNote, Loading, CopyButton, Json, Lazy,
} from '../lib.js';

const STATUSES = ['completed', 'incomplete', 'failed', 'cancelled', 'in_progress', 'queued'];
const FILTERS = ['q', 'owner', 'model', 'status', 'since', 'until'];

// <input type="datetime-local"> speaks local time; the API speaks epoch seconds.
const toLocal = (epoch) => {
  if (!epoch) return '';
  const d = new Date(Number(epoch) * 1000);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
};
const fromLocal = (value) => (value ? String(Math.floor(new Date(value).getTime() / 1000)) : '');

function Filters({ params, owners, models }) {
  const [form, setForm] = useState(() => Object.fromEntries(FILTERS.map((k) => [k, params[k] || ''])));
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const submit = (e) => {
    e.preventDefault();
    location.hash = href('responses', null, form);
  };
  const reset = () => { setForm(Object.fromEntries(FILTERS.map((k) => [k, '']))); location.hash = href('responses'); };
  return html`<form class="filters" role="search" aria-label="Filter responses" onSubmit=${submit}>
    <div class="field grow"><label for="f-q">Search id or model</label>
      <input id="f-q" type="search" value=${form.q} onInput=${set('q')} placeholder="resp_… or model name" /></div>
    <div class="field"><label for="f-owner">Key</label>
      <select id="f-owner" value=${form.owner} onChange=${set('owner')}>
        <option value="">Any key</option>
        ${(owners || []).map((o) => html`<option key=${o.owner} value=${o.owner}>${o.label}</option>`)}
      </select></div>
    <div class="field"><label for="f-model">Model</label>
      <input id="f-model" list="f-models" value=${form.model} onInput=${set('model')} placeholder="any" />
      <datalist id="f-models">${(models || []).map((m) => html`<option key=${m} value=${m} />`)}</datalist></div>
    <div class="field"><label for="f-status">Status</label>
      <select id="f-status" value=${form.status} onChange=${set('status')}>
        <option value="">Any status</option>
        ${STATUSES.map((s) => html`<option key=${s} value=${s}>${s}</option>`)}
      </select></div>
    <div class="field"><label for="f-since">From</label>
      <input id="f-since" type="datetime-local" value=${toLocal(form.since)}
        onInput=${(e) => setForm({ ...form, since: fromLocal(e.target.value) })} /></div>
    <div class="field"><label for="f-until">To</label>
      <input id="f-until" type="datetime-local" value=${toLocal(form.until)}
        onInput=${(e) => setForm({ ...form, until: fromLocal(e.target.value) })} /></div>
    <div class="actions"><button type="submit">Apply</button>
      <button type="button" class="secondary" onClick=${reset}>Reset</button></div>
  </form>`;
}

export function Responses({ params }) {
  const [listPath] = boot.requests({ page: 'responses', arg: null, params });
  const list = useApi(listPath);
  useReady('responses', !list.loading);
  const rows = list.data ? list.data.data : [];
  return html`<h1 tabindex="-1">Responses</h1>
    <${Filters} key=${listPath} params=${params} owners=${list.data && list.data.owners} models=${list.data && list.data.models} />
    <${ErrorNote} error=${list.error} />
    ${list.loading && !list.data ? html`<${Loading} what="Loading responses" />` : html`
    <div class="table-wrap"><table class="list" aria-busy=${list.loading ? 'true' : 'false'}>
      <caption class="sr-only">Stored responses, newest first</caption>
      <thead><tr><th scope="col">Created</th><th scope="col">Response</th><th scope="col">Model</th>
        <th scope="col">Provider</th><th scope="col">Status</th><th scope="col" class="num">Input</th>
        <th scope="col" class="num">Output</th><th scope="col">Key</th><th scope="col">Continues</th></tr></thead>
      <tbody>
        ${rows.length === 0 && html`<tr><td colspan="9" class="muted">No responses match.</td></tr>`}
        ${rows.map((r) => html`<tr key=${r.id}>
          <td class="nowrap">${when(r.created_at)}</td>
          <td><a class="mono" href=${href('responses', r.id)} title=${r.id}>${short(r.id)}</a>${r.background ? html` <span class="tag">bg</span>` : ''}</td>
          <td>${r.model}</td><td>${r.provider}</td><td><${Status} status=${r.status} /></td>
          <td class="num">${num(r.input_tokens)}</td><td class="num">${num(r.output_tokens)}</td>
          <td>${r.owner_label}</td>
          <td>${r.previous_response_id ? html`<a class="mono" href=${href('responses', r.previous_response_id)} title=${'Continues ' + r.previous_response_id}>${short(r.previous_response_id, 14)}</a>` : '—'}</td>
        </tr>`)}
      </tbody></table></div>
    <nav class="pager" aria-label="Pages">
      ${params.after && html`<a class="button secondary" href=${href('responses', null, { ...params, after: '' })}>Newest</a>`}
      ${list.data && list.data.has_more && html`<a class="button secondary" href=${href('responses', null, { ...params, after: list.data.last_id })}>Older</a>`}
    </nav>`}`;
}

// -- one response -------------------------------------------------------------------------------------

function text(part) {
  if (typeof part === 'string') return part;
  if (part.text != null) return part.text;
  if (part.refusal != null) return `[refusal] ${part.refusal}`;
  if (part.type === 'input_image') return `[image ${part.image_url ? short(part.image_url, 40) : part.file_id || ''}]`;
  if (part.type === 'input_file') return `[file ${part.filename || part.file_id || ''}]`;
  return JSON.stringify(part);
}

function Item({ item }) {
  const type = item.type || (item.role ? 'message' : 'item');
  let body;
  if (type === 'message') {
    const parts = typeof item.content === 'string' ? [item.content] : item.content || [];
    body = html`<div class="item-head"><strong>${item.role}</strong></div>${parts.map((p, i) => html`<p key=${i} class="text">${text(p)}</p>`)}`;
  } else if (type === 'function_call') {
    body = html`<div class="item-head"><strong>function call</strong> <code>${item.name}</code> <span class="muted mono">${item.call_id}</span></div><pre>${item.arguments}</pre>`;
  } else if (type === 'function_call_output') {
    body = html`<div class="item-head"><strong>function output</strong> <span class="muted mono">${item.call_id}</span></div><pre>${typeof item.output === 'string' ? item.output : JSON.stringify(item.output, null, 2)}</pre>`;
  } else if (type === 'reasoning') {
    const summary = (item.summary || []).map((s) => s.text).join('\n');
    body = html`<div class="item-head"><strong>reasoning</strong>${item.encrypted_content ? html` <span class="tag">encrypted</span>` : ''}</div><p class="text">${summary || html`<span class="muted">(no summary)</span>`}</p>`;
  } else {
    body = html`<div class="item-head"><strong>${type}</strong></div><pre>${JSON.stringify(item, null, 2)}</pre>`;
  }
  return html`<li class=${'item item-' + type}>${body}</li>`;
}

function Items({ title, items, id }) {
  return html`<section aria-labelledby=${id}><h2 id=${id}>${title} <span class="muted">(${items.length})</span></h2>
    ${items.length ? html`<ol class="items">${items.map((item, i) => html`<${Item} key=${i} item=${item} />`)}</ol>` : html`<p class="muted">None.</p>`}</section>`;
}

function eventSummary(e) {
  if (typeof e.delta === 'string') return e.delta;
  if (e.response) return `status ${e.response.status}`;
  if (e.item) return `${e.item.type}${e.item.name ? ' ' + e.item.name : ''}`;
  if (e.part) return e.part.type;
  if (typeof e.text === 'string') return e.text;
  return '';
}

function Events({ detail }) {
  const { events, events_source: source, events_total: total } = detail;
  return html`<section aria-labelledby="events-h"><h2 id="events-h">Stream events <span class="muted">(${num(total)}, ${source === 'stored' ? 'as stored' : 're-made from the final state'})</span></h2>
    <${Lazy} summary=${`Show ${events.length < total ? `the first ${num(events.length)}` : 'all'} events`}>${() => html`
      <div class="table-wrap"><table class="list compact"><thead><tr><th scope="col" class="num">#</th><th scope="col">Type</th><th scope="col">Data</th></tr></thead>
      <tbody>${events.map((e, i) => html`<tr key=${i}><td class="num">${e.sequence_number ?? i}</td><td class="mono">${e.type}</td><td class="clip">${eventSummary(e)}</td></tr>`)}</tbody></table></div>`}
    </${Lazy}></section>`;
}

// The chain drawn as a timeline: one lane per provider, one dot per turn, oldest on the left.
function Timeline({ chain, current }) {
  const providers = [...new Set(chain.map((t) => t.provider))];
  const lane = 34;
  const left = 150;
  const width = 1000;
  const step = chain.length > 1 ? (width - left - 30) / (chain.length - 1) : 0;
  const x = (i) => left + 15 + i * step;
  const y = (t) => 20 + providers.indexOf(t.provider) * lane;
  const height = providers.length * lane + 10;
  const label = `The chain's ${chain.length} turns across ${providers.length} provider${providers.length > 1 ? 's' : ''}: ${providers.join(', ')}`;
  return html`<svg class="timeline" viewBox=${`0 0 ${width} ${height}`} role="img" aria-label=${label}>
    ${providers.map((p, i) => html`<g key=${p}><line x1=${left} x2=${width - 10} y1=${20 + i * lane} y2=${20 + i * lane} class="lane" />
      <text x="6" y=${24 + i * lane} class="lane-name">${p}</text></g>`)}
    <polyline points=${chain.map((t, i) => `${x(i)},${y(t)}`).join(' ')} class="path" />
    ${chain.map((t, i) => html`<circle key=${t.id} cx=${x(i)} cy=${y(t)} r=${t.id === current ? 9 : 6}
      class=${'dot status-' + t.status + (t.id === current ? ' current' : '')}><title>${`${i + 1}. ${t.model} (${t.provider}) ${t.status}`}</title></circle>`)}
  </svg>`;
}

function Chain({ detail }) {
  const { chain, id } = detail;
  return html`<section aria-labelledby="chain-h"><h2 id="chain-h">Chain <span class="muted">(${chain.length} turn${chain.length > 1 ? 's' : ''}${detail.chain_complete ? '' : ', older turns not shown'})</span></h2>
    <${Timeline} chain=${chain} current=${id} />
    <ol class="chain">${chain.map((t, i) => html`<li key=${t.id} class=${t.id === id ? 'current' : ''}>
      <span class="turn-no">${i + 1}</span>
      ${t.id === id ? html`<strong class="mono" aria-current="true">${short(t.id, 26)}</strong>` : html`<a class="mono" href=${href('responses', t.id)}>${short(t.id, 26)}</a>`}
      <span>${t.model}</span><span class="tag">${t.provider}</span><${Status} status=${t.status} />
      <span class="muted">${when(t.created_at)}</span>
      <span>${num(t.usage && t.usage.total_tokens)} tokens</span><span>${usd(t.cost)}</span><span>${ms(t.latency_ms)}</span>
    </li>`)}</ol></section>`;
}

// The spend log's figures (a second request: the page does not wait for them) over the estimates.
function withSpend(turn, logged) {
  const row = logged && logged.turns[turn.id];
  return row ? { ...turn, ...row, cost_source: 'spend_log' } : turn;
}

export function ResponseDetail({ id }) {
  const [detailPath, spendPath] = boot.requests({ page: 'responses', arg: id, params: {} });
  const { data: raw, error, loading } = useApi(detailPath);
  const logged = useApi(spendPath).data;
  useReady('response', !loading);
  const d = raw && { ...withSpend(raw, logged), chain: raw.chain.map((t) => withSpend(t, logged)) };
  const u = (d && d.usage) || {};
  return html`<p><a href="#/responses">← All responses</a></p>
    <h1 tabindex="-1">Response <span class="mono small-id">${id}</span> <${CopyButton} text=${id} label="Copy id" /></h1>
    <${ErrorNote} error=${error} />
    ${loading && html`<${Loading} what="Loading the response" />`}
    ${d && html`
      <dl class="facts">
        <div><dt>Status</dt><dd><${Status} status=${d.status} />${d.background ? html` <span class="tag">background</span>` : ''}</dd></div>
        <div><dt>Model</dt><dd>${d.model}</dd></div>
        <div><dt>Deployment</dt><dd>${d.provider}/${d.upstream_model || '?'} <span class="muted mono">${d.deployment_id}</span></dd></div>
        <div><dt>Key</dt><dd>${d.owner_label}</dd></div>
        <div><dt>Created</dt><dd>${when(d.created_at)}</dd></div>
        <div><dt>Latency</dt><dd>${ms(d.latency_ms)}${d.ttft_ms != null ? html` <span class="muted">(first event ${ms(d.ttft_ms)})</span>` : ''}</dd></div>
        <div><dt>Tokens</dt><dd>${num(u.input_tokens)} in${u.input_tokens_details && u.input_tokens_details.cached_tokens ? ` (${num(u.input_tokens_details.cached_tokens)} cached)` : ''} · ${num(u.output_tokens)} out${u.output_tokens_details && u.output_tokens_details.reasoning_tokens ? ` (${num(u.output_tokens_details.reasoning_tokens)} reasoning)` : ''}</dd></div>
        <div><dt>Cost</dt><dd id="cost">${usd(d.cost)}${d.cost_source === 'estimated' ? html` <span class="muted">(estimated from usage)</span>` : ''}</dd></div>
        ${d.end_user && html`<div><dt>End user</dt><dd>${d.end_user}</dd></div>`}
        ${d.request_id && html`<div><dt>Request id</dt><dd class="mono">${d.request_id}</dd></div>`}
      </dl>
      ${d.error && html`<p class="error" role="note">Error: ${d.error.code ? d.error.code + ': ' : ''}${d.error.message}</p>`}
      <${Chain} detail=${d} />
      <div class="two">
        <${Items} title="Input items (this turn)" items=${d.input_items} id="input-h" />
        <${Items} title="Output items" items=${d.response.output || []} id="output-h" />
      </div>
      <${Events} detail=${d} />
      <${Json} value=${d.response} label="The Response as the client received it (JSON)" />`}`;
}
