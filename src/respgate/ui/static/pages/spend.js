// Spend: by day, key, team, end user and model over a date range, as SVG bars (one request for all).
import { html, useState, useApi, useReady, href, boot, usd, num, ErrorNote, Loading, Bars, Columns } from '../lib.js';

const CHARTS = [['key', 'By key'], ['team', 'By team'], ['end_user', 'By end user'], ['model', 'By model']];
const METRICS = [['spend', 'Spend', usd], ['requests', 'Requests', num], ['tokens', 'Tokens', num]];

// The chart's numbers as a table, made when opened (five charts' tables would double the page's DOM).
function Table({ bars, others, caption }) {
  const [open, setOpen] = useState(false);
  return html`<details onToggle=${(e) => setOpen(e.currentTarget.open)}><summary>Show as a table</summary>${open && html`<div class="table-wrap"><table class="list compact">
    <caption class="sr-only">${caption}</caption>
    <thead><tr><th scope="col">Name</th><th scope="col" class="num">Spend</th><th scope="col" class="num">Requests</th><th scope="col" class="num">Tokens</th></tr></thead>
    <tbody>${bars.map((b, i) => html`<tr key=${i}><td>${b.label}</td><td class="num">${usd(b.spend)}</td><td class="num">${num(b.requests)}</td><td class="num">${num(b.tokens)}</td></tr>`)}
    ${others && html`<tr><td>${others.count} others</td><td class="num">${usd(others.spend)}</td><td class="num">${num(others.requests)}</td><td class="num">${num(others.tokens)}</td></tr>`}</tbody>
  </table></div>`}</details>`;
}

function Chart({ by, title, chart, range, metric }) {
  const [name, label, format] = METRICS.find((m) => m[0] === metric);
  const id = 'chart-' + by;
  const caption = `${label} ${title.toLowerCase()}, ${range.start_date} to ${range.end_date}`;
  let body;
  if (!chart) body = html`<${Loading} />`;
  else if (by === 'day') body = html`<${Columns} bars=${chart.bars} value=${name} format=${format} caption=${caption} />`;
  else if (!chart.bars.length) body = html`<p class="muted">No spend in this range.</p>`;
  else body = html`<${Bars} bars=${chart.bars} value=${name} format=${format} caption=${caption} />${chart.others && html`<p class="muted">and ${chart.others.count} more (${format(chart.others[name])})</p>`}`;
  return html`<section class="card chart-card" aria-labelledby=${id}>
    <h2 id=${id}>${title}</h2>${body}${chart && chart.bars.length > 0 && html`<${Table} bars=${chart.bars} others=${chart.others} caption=${caption} />`}</section>`;
}

export function Spend({ params }) {
  const range = boot.spendRange(params);
  const { data, error, loading } = useApi(boot.requests({ page: 'spend', arg: null, params })[0]);
  const [form, setForm] = useState(range);
  const [metric, setMetric] = useState(params.metric || 'spend');
  useReady('spend', !!data && !loading);
  const charts = data ? data.charts : {};
  const total = charts.day ? charts.day.bars.reduce((t, b) => ({ spend: t.spend + b.spend, requests: t.requests + b.requests, tokens: t.tokens + b.tokens }),
    { spend: 0, requests: 0, tokens: 0 }) : null;
  const submit = (e) => { e.preventDefault(); location.hash = href('spend', null, { ...form, metric }); };
  return html`<h1 tabindex="-1">Spend</h1>
    <form class="filters" onSubmit=${submit} aria-label="Date range">
      <div class="field"><label for="s-start">From</label><input id="s-start" type="date" required value=${form.start_date} onInput=${(e) => setForm({ ...form, start_date: e.target.value })} /></div>
      <div class="field"><label for="s-end">To</label><input id="s-end" type="date" required value=${form.end_date} onInput=${(e) => setForm({ ...form, end_date: e.target.value })} /></div>
      <div class="actions"><button type="submit">Apply</button></div>
      <fieldset class="metric"><legend>Show</legend>
        ${METRICS.map(([name, label]) => html`<label key=${name}><input type="radio" name="metric" value=${name} checked=${metric === name} onChange=${() => setMetric(name)} /> ${label}</label>`)}
      </fieldset>
    </form>
    <${ErrorNote} error=${error} />
    <dl class="facts totals" aria-live="polite" aria-busy=${loading ? 'true' : 'false'}>
      <div><dt>Spend</dt><dd id="total-spend">${total ? usd(total.spend) : '…'}</dd></div>
      <div><dt>Requests</dt><dd id="total-requests">${total ? num(total.requests) : '…'}</dd></div>
      <div><dt>Tokens</dt><dd>${total ? num(total.tokens) : '…'}</dd></div>
    </dl>
    <${Chart} by="day" title="By day" chart=${charts.day} range=${range} metric=${metric} />
    <div class="charts">${CHARTS.map(([by, title]) => html`<${Chart} key=${by} by=${by} title=${title} chart=${charts[by]} range=${range} metric=${metric} />`)}</div>`;
}
