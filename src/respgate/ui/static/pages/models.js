// Models: groups and deployments with cooldowns, live requests / tokens per minute, and health on demand.
import { html, useState, useEffect, api, useApi, useReady, num, usd, ms, ErrorNote, Loading } from '../lib.js';

const REFRESH_MS = 5000;

function Health({ result }) {
  if (!result) return html`<span class="muted">not checked</span>`;
  return result.ok ? html`<span class="status status-completed">healthy</span>`
    : html`<span class="status status-failed">unhealthy</span> <span class="muted">${result.error}</span>`;
}

function Cooldown({ d }) {
  if (!d.cooling_down) return html`<span class="muted">no</span>`;
  return html`<span class="status status-failed">cooling down</span> <span>${d.cooldown_seconds_left}s left</span>`;
}

function Group({ group, health }) {
  const id = 'g-' + group.name.replace(/[^a-zA-Z0-9_-]/g, '_');
  return html`<section class="card" aria-labelledby=${id}>
    <h2 id=${id}>${group.name} ${group.wildcard ? html`<span class="tag">wildcard</span>` : ''} <span class="muted">(${group.deployments.length} deployment${group.deployments.length === 1 ? '' : 's'})</span></h2>
    <div class="table-wrap"><table class="list">
      <caption class="sr-only">Deployments of ${group.name}</caption>
      <thead><tr><th scope="col">Deployment</th><th scope="col">Upstream</th><th scope="col">Limits</th>
        <th scope="col" class="num">Requests / min</th><th scope="col" class="num">Tokens / min</th><th scope="col" class="num">Failures / min</th>
        <th scope="col">Latency</th><th scope="col">Price / 1M in · out</th><th scope="col">Cooldown</th><th scope="col">Health</th></tr></thead>
      <tbody>${group.deployments.map((d) => html`<tr key=${d.id}>
        <td class="mono">${d.id}</td>
        <td>${d.provider}/${d.upstream_model}${d.api_base && html`<div class="muted small-id">${d.api_base}</div>`}</td>
        <td>${[d.rpm_limit != null && `${num(d.rpm_limit)} rpm`, d.tpm_limit != null && `${num(d.tpm_limit)} tpm`,
          d.max_parallel_requests != null && `${d.max_parallel_requests} parallel`].filter(Boolean).join(' · ') || '—'}</td>
        <td class="num">${num(d.live.requests)}${d.router_minute && d.rpm_limit != null ? html`<div class="muted">${num(d.router_minute.requests)} of ${num(d.rpm_limit)} this minute</div>` : ''}</td>
        <td class="num">${num(d.live.tokens)}${d.router_minute && d.tpm_limit != null ? html`<div class="muted">${num(d.router_minute.tokens)} of ${num(d.tpm_limit)} this minute</div>` : ''}</td>
        <td class="num">${num(d.live.failures)}</td>
        <td>${ms(d.latency_ms)}</td>
        <td>${d.input_per_million != null ? `${usd(d.input_per_million)} · ${usd(d.output_per_million)}` : '—'}</td>
        <td><${Cooldown} d=${d} /></td><td><${Health} result=${health[d.id]} /></td>
      </tr>`)}</tbody></table></div></section>`;
}

export function Models() {
  const { data, error, loading, reload } = useApi('api/models');
  const [auto, setAuto] = useState(true);
  const [health, setHealth] = useState({});
  const [checking, setChecking] = useState(false);
  const [healthError, setHealthError] = useState(null);
  useReady('models', !loading || !!data);
  useEffect(() => {
    if (!auto) return undefined;
    const t = setInterval(reload, REFRESH_MS);
    return () => clearInterval(t);
  }, [auto]);
  const check = async () => {
    setChecking(true); setHealthError(null);
    try {
      const r = await api('api/health', { method: 'POST' });
      const found = {};
      for (const e of r.healthy_endpoints) found[e.model_id] = { ok: true };
      for (const e of r.unhealthy_endpoints) found[e.model_id] = { ok: false, error: e.error };
      setHealth(found);
    } catch (err) { setHealthError(err); } finally { setChecking(false); }
  };
  return html`<h1 tabindex="-1">Models</h1>
    <div class="toolbar">
      ${data && html`<span>Routing: <strong>${data.routing_strategy}</strong>${data.shared_state ? ' · state shared in Redis' : ''}</span>`}
      <span class="muted">Per-minute figures: the spend log's last ${data ? data.window_seconds : 60} seconds.</span>
      <label class="check"><input type="checkbox" checked=${auto} onChange=${(e) => setAuto(e.target.checked)} /> Refresh every 5 s</label>
      <button type="button" onClick=${check} disabled=${checking} aria-describedby="health-note">${checking ? 'Checking…' : 'Check health'}</button>
      <span id="health-note" class="muted">sends one small request to every deployment</span>
    </div>
    <p class="sr-only" role="status">${checking ? 'Checking health' : Object.keys(health).length ? 'Health checked' : ''}</p>
    <${ErrorNote} error=${error || healthError} />
    ${!data ? html`<${Loading} />` : data.groups.map((g) => html`<${Group} key=${g.name} group=${g} health=${health} />`)}`;
}
