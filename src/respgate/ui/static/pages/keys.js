// Keys and teams: create, edit limits and budgets, block, revoke. Changes go through LiteLLM's admin routes.
import {
  html, useState, api, useApi, useReady, href, usd, num, when, ErrorNote, Loading, Dialog, CopyButton,
} from '../lib.js';

const DURATIONS = ['', '1h', '1d', '7d', '30d'];

// The limit fields a key and a team share, as form values (strings) and back.
const LIMITS = [
  ['max_budget', 'Max budget (USD)', 'number', 'any'],
  ['rpm_limit', 'Requests per minute', 'number', '1'],
  ['tpm_limit', 'Tokens per minute', 'number', '1'],
  ['max_parallel_requests', 'Parallel requests', 'number', '1'],
];

function formOf(entity, extra) {
  const f = {};
  for (const [name] of LIMITS) f[name] = entity && entity[name] != null ? String(entity[name]) : '';
  f.budget_duration = (entity && entity.budget_duration) || '';
  f.models = entity && entity.models ? entity.models.join(', ') : '';
  return { ...f, ...extra };
}

// Form values -> an admin API body. `clear`: send null for an emptied field (updates), else leave it out.
function bodyOf(form, clear) {
  const body = {};
  for (const [name, , , step] of LIMITS) {
    const v = form[name].trim();
    if (v !== '') body[name] = step === '1' ? parseInt(v, 10) : parseFloat(v);
    else if (clear) body[name] = null;
  }
  if (form.budget_duration) body.budget_duration = form.budget_duration;
  else if (clear) body.budget_duration = null;
  body.models = form.models.split(',').map((m) => m.trim()).filter(Boolean);
  return body;
}

function LimitFields({ form, set, prefix, models }) {
  return html`
    ${LIMITS.map(([name, label, type, step]) => html`<div class="field" key=${name}><label for=${prefix + name}>${label}</label>
      <input id=${prefix + name} type=${type} min="0" step=${step} inputmode="decimal" value=${form[name]} onInput=${set(name)} /></div>`)}
    <div class="field"><label for=${prefix + 'budget_duration'}>Budget resets every</label>
      <select id=${prefix + 'budget_duration'} value=${form.budget_duration} onChange=${set('budget_duration')}>
        ${DURATIONS.map((d) => html`<option key=${d} value=${d}>${d || 'never'}</option>`)}
        ${form.budget_duration && !DURATIONS.includes(form.budget_duration) && html`<option value=${form.budget_duration}>${form.budget_duration}</option>`}
      </select></div>
    <div class="field grow"><label for=${prefix + 'models'}>Models</label>
      <input id=${prefix + 'models'} value=${form.models} onInput=${set('models')} placeholder="all models" aria-describedby=${prefix + 'models-hint'} />
      <small id=${prefix + 'models-hint'} class="muted">Comma-separated model groups (${models.slice(0, 4).join(', ')}${models.length > 4 ? ', …' : ''}); empty for all.</small></div>`;
}

function useForm(initial) {
  const [form, setForm] = useState(initial);
  const set = (name) => (e) => setForm((f) => ({ ...f, [name]: e.target.type === 'checkbox' ? e.target.checked : e.target.value }));
  return [form, set, setForm];
}

function NewKey({ teams, models, onCreated }) {
  const blank = formOf(null, { key_alias: '', team_id: '', duration: '' });
  const [form, set, setForm] = useForm(blank);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true); setError(null);
    try {
      const body = bodyOf(form, false);
      if (form.key_alias.trim()) body.key_alias = form.key_alias.trim();
      if (form.team_id) body.team_id = form.team_id;
      if (form.duration.trim()) body.duration = form.duration.trim();
      onCreated(await api('../key/generate', { method: 'POST', body }));
      setForm(blank);
    } catch (err) { setError(err); } finally { setBusy(false); }
  };
  return html`<form class="card grid-form" onSubmit=${submit} aria-labelledby="new-key-h">
    <h3 id="new-key-h">New key</h3>
    <div class="field"><label for="nk-key_alias">Alias</label><input id="nk-key_alias" value=${form.key_alias} onInput=${set('key_alias')} /></div>
    <div class="field"><label for="nk-team_id">Team</label><select id="nk-team_id" value=${form.team_id} onChange=${set('team_id')}>
      <option value="">No team</option>${teams.map((t) => html`<option key=${t.team_id} value=${t.team_id}>${t.team_alias || t.team_id}</option>`)}</select></div>
    <${LimitFields} form=${form} set=${set} prefix="nk-" models=${models} />
    <div class="field"><label for="nk-duration">Expires after</label><input id="nk-duration" value=${form.duration} onInput=${set('duration')} placeholder="never (e.g. 30d)" /></div>
    <${ErrorNote} error=${error} />
    <div class="actions"><button type="submit" disabled=${busy}>Create key</button></div>
  </form>`;
}

function EditKey({ item, models, onDone }) {
  const [form, set] = useForm(formOf(item, { key_alias: item.key_alias || '' }));
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    try {
      await api('../key/update', { method: 'POST', body: { key: item.token, key_alias: form.key_alias.trim() || null, ...bodyOf(form, true) } });
      onDone(true);
    } catch (err) { setError(err); }
  };
  return html`<${Dialog} title=${'Edit key ' + (item.key_alias || item.key_name)} onClose=${() => onDone(false)} id="edit-key">
    <form class="grid-form" onSubmit=${submit}>
      <div class="field"><label for="ek-key_alias">Alias</label><input id="ek-key_alias" value=${form.key_alias} onInput=${set('key_alias')} /></div>
      <${LimitFields} form=${form} set=${set} prefix="ek-" models=${models} />
      <${ErrorNote} error=${error} />
      <div class="actions"><button type="submit">Save</button><button type="button" class="secondary" onClick=${() => onDone(false)}>Cancel</button></div>
    </form></${Dialog}>`;
}

function Confirm({ title, message, action, onDone }) {
  const [error, setError] = useState(null);
  const go = async () => { try { await action(); onDone(true); } catch (err) { setError(err); } };
  return html`<${Dialog} title=${title} onClose=${() => onDone(false)} id="confirm">
    <p>${message}</p><${ErrorNote} error=${error} />
    <div class="actions"><button type="button" class="danger" onClick=${go}>${title}</button>
      <button type="button" class="secondary" onClick=${() => onDone(false)} autofocus>Cancel</button></div></${Dialog}>`;
}

function ShownOnce({ created, onClose }) {
  return html`<${Dialog} title="Your new key" onClose=${onClose} id="shown-once">
    <p><strong>Copy it now: it is shown only this once.</strong> respgate keeps only its hash.</p>
    <p class="secret"><code id="new-key-value">${created.key}</code> <${CopyButton} text=${created.key} /></p>
    <div class="actions"><button type="button" onClick=${onClose}>I have stored it</button></div></${Dialog}>`;
}

function Budget({ spend, max }) {
  return html`<span>${usd(spend)}${max != null ? html` / ${usd(max)} <meter min="0" max=${max || 1} value=${spend || 0} aria-label="Budget used"></meter>` : ''}</span>`;
}

const limits = (e) => [e.rpm_limit != null && `${num(e.rpm_limit)} rpm`, e.tpm_limit != null && `${num(e.tpm_limit)} tpm`,
  e.max_parallel_requests != null && `${e.max_parallel_requests} parallel`].filter(Boolean).join(' · ') || '—';

function keyState(k) {
  if (k.blocked) return 'blocked';
  if (k.expires && Date.parse(k.expires) < Date.now()) return 'expired';
  return 'active';
}

const SHOWN = 100;  // rows rendered at first: a proxy may have thousands of keys

function KeyTable({ keys: all, setModal, reload, onError }) {
  const [filter, setFilter] = useState('');
  const [limit, setLimit] = useState(SHOWN);
  const needle = filter.trim().toLowerCase();
  const matching = needle ? all.filter((k) => [k.key_alias, k.key_name, k.team_alias, k.team_id, k.token]
    .some((v) => v && v.toLowerCase().includes(needle))) : all;
  const keys = matching.slice(0, limit);
  const block = async (k) => {
    try { await api(k.blocked ? '../key/unblock' : '../key/block', { method: 'POST', body: { key: k.token } }); reload(); } catch (err) { onError(err); }
  };
  return html`${all.length > 10 && html`<div class="toolbar"><div class="field"><label for="key-filter">Filter keys</label>
      <input id="key-filter" type="search" value=${filter} onInput=${(e) => { setFilter(e.target.value); setLimit(SHOWN); }} placeholder="alias, name, team" /></div>
      <span class="muted" role="status">${matching.length} of ${all.length}</span></div>`}
    <div class="table-wrap"><table class="list">
    <caption class="sr-only">Virtual keys</caption>
    <thead><tr><th scope="col">Key</th><th scope="col">Team</th><th scope="col">Models</th><th scope="col">Spend / budget</th>
      <th scope="col">Limits</th><th scope="col">Resets</th><th scope="col">Expires</th><th scope="col">State</th><th scope="col">Actions</th></tr></thead>
    <tbody>${keys.length === 0 && html`<tr><td colspan="9" class="muted">${all.length ? 'No key matches.' : 'No keys yet.'}</td></tr>`}
      ${keys.map((k) => html`<tr key=${k.token}>
        <td><strong>${k.key_alias || '(no alias)'}</strong> <span class="mono muted">${k.key_name}</span></td>
        <td>${k.team_alias || k.team_id || '—'}</td><td>${k.models.length ? k.models.join(', ') : 'all'}</td>
        <td><${Budget} spend=${k.spend} max=${k.max_budget} /></td><td>${limits(k)}</td><td>${k.budget_duration || '—'}</td>
        <td>${k.expires ? when(Date.parse(k.expires) / 1000) : 'never'}</td><td><span class=${'status status-' + keyState(k)}>${keyState(k)}</span></td>
        <td class="row-actions">
          <button type="button" class="small" onClick=${() => setModal({ kind: 'edit-key', item: k })} aria-label=${'Edit ' + (k.key_alias || k.key_name)}>Edit</button>
          <button type="button" class="small secondary" onClick=${() => block(k)} aria-label=${(k.blocked ? 'Unblock ' : 'Block ') + (k.key_alias || k.key_name)}>${k.blocked ? 'Unblock' : 'Block'}</button>
          <button type="button" class="small danger" onClick=${() => setModal({ kind: 'revoke', item: k })} aria-label=${'Revoke ' + (k.key_alias || k.key_name)}>Revoke</button>
          ${k.owner && html`<a class="small" href=${href('responses', null, { owner: k.owner })} aria-label=${'Responses of ' + (k.key_alias || k.key_name)}>Responses</a>`}
        </td></tr>`)}</tbody></table></div>
    ${matching.length > keys.length && html`<p><button type="button" class="secondary" onClick=${() => setLimit(limit + 500)}>Show ${Math.min(500, matching.length - keys.length)} more</button></p>`}`;
}

function NewTeam({ models, onCreated }) {
  const blank = formOf(null, { team_alias: '', share: false });
  const [form, set, setForm] = useForm(blank);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const body = { ...bodyOf(form, false), team_alias: form.team_alias.trim() || undefined };
      if (form.share) body.metadata = { share_responses: true };
      await api('../team/new', { method: 'POST', body });
      setForm(blank);
      onCreated();
    } catch (err) { setError(err); }
  };
  return html`<form class="card grid-form" onSubmit=${submit} aria-labelledby="new-team-h">
    <h3 id="new-team-h">New team</h3>
    <div class="field"><label for="nt-team_alias">Name</label><input id="nt-team_alias" required value=${form.team_alias} onInput=${set('team_alias')} /></div>
    <${LimitFields} form=${form} set=${set} prefix="nt-" models=${models} />
    <div class="field check"><input id="nt-share" type="checkbox" checked=${form.share} onChange=${set('share')} />
      <label for="nt-share">Keys of the team share their responses and chains</label></div>
    <${ErrorNote} error=${error} />
    <div class="actions"><button type="submit">Create team</button></div>
  </form>`;
}

function EditTeam({ item, models, onDone }) {
  const [form, set] = useForm(formOf(item, { team_alias: item.team_alias || '' }));
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    try {
      await api('../team/update', { method: 'POST', body: { team_id: item.team_id, team_alias: form.team_alias.trim() || null, ...bodyOf(form, true) } });
      onDone(true);
    } catch (err) { setError(err); }
  };
  return html`<${Dialog} title=${'Edit team ' + (item.team_alias || item.team_id)} onClose=${() => onDone(false)} id="edit-team">
    <form class="grid-form" onSubmit=${submit}>
      <div class="field"><label for="et-team_alias">Name</label><input id="et-team_alias" value=${form.team_alias} onInput=${set('team_alias')} /></div>
      <${LimitFields} form=${form} set=${set} prefix="et-" models=${models} />
      <${ErrorNote} error=${error} />
      <div class="actions"><button type="submit">Save</button><button type="button" class="secondary" onClick=${() => onDone(false)}>Cancel</button></div>
    </form></${Dialog}>`;
}

function TeamTable({ teams, setModal }) {
  return html`<div class="table-wrap"><table class="list">
    <caption class="sr-only">Teams</caption>
    <thead><tr><th scope="col">Team</th><th scope="col">Keys</th><th scope="col">Models</th><th scope="col">Spend / budget</th>
      <th scope="col">Limits</th><th scope="col">Resets</th><th scope="col">Shares responses</th><th scope="col">Actions</th></tr></thead>
    <tbody>${teams.length === 0 && html`<tr><td colspan="8" class="muted">No teams yet.</td></tr>`}
      ${teams.map((t) => html`<tr key=${t.team_id}>
        <td><strong>${t.team_alias || '(no name)'}</strong> <span class="mono muted">${t.team_id}</span></td><td class="num">${t.key_count}</td>
        <td>${t.models.length ? t.models.join(', ') : 'all'}</td><td><${Budget} spend=${t.spend} max=${t.max_budget} /></td>
        <td>${limits(t)}</td><td>${t.budget_duration || '—'}</td><td>${t.metadata && t.metadata.share_responses ? 'yes' : 'no'}</td>
        <td class="row-actions">
          <button type="button" class="small" onClick=${() => setModal({ kind: 'edit-team', item: t })} aria-label=${'Edit team ' + (t.team_alias || t.team_id)}>Edit</button>
          <button type="button" class="small danger" onClick=${() => setModal({ kind: 'delete-team', item: t })} aria-label=${'Delete team ' + (t.team_alias || t.team_id)}>Delete</button>
        </td></tr>`)}</tbody></table></div>`;
}

export function Keys() {
  const { data, error, loading, reload } = useApi('api/keys');
  const [modal, setModal] = useState(null);
  const [actionError, setActionError] = useState(null);
  useReady('keys', !loading);
  const close = (changed) => { setModal(null); if (changed) reload(); };
  if (loading && !data) return html`<h1 tabindex="-1">Keys & teams</h1><${Loading} />`;
  if (!data) return html`<h1 tabindex="-1">Keys & teams</h1><${ErrorNote} error=${error} />`;
  if (!data.enabled) {
    return html`<h1 tabindex="-1">Keys & teams</h1><p>Virtual keys need <code>general_settings.master_key</code> in the config.</p>`;
  }
  const m = modal;
  return html`<h1 tabindex="-1">Keys & teams</h1>
    <${ErrorNote} error=${error || actionError} />
    <section aria-labelledby="keys-h"><h2 id="keys-h">Keys <span class="muted">(${data.keys.length})</span></h2>
      <${NewKey} teams=${data.teams} models=${data.models} onCreated=${(created) => { setModal({ kind: 'created', item: created }); reload(); }} />
      <${KeyTable} keys=${data.keys} setModal=${setModal} reload=${reload} onError=${setActionError} /></section>
    <section aria-labelledby="teams-h"><h2 id="teams-h">Teams <span class="muted">(${data.teams.length})</span></h2>
      <${NewTeam} models=${data.models} onCreated=${reload} />
      <${TeamTable} teams=${data.teams} setModal=${setModal} /></section>
    ${m && m.kind === 'created' && html`<${ShownOnce} created=${m.item} onClose=${() => setModal(null)} />`}
    ${m && m.kind === 'edit-key' && html`<${EditKey} item=${m.item} models=${data.models} onDone=${close} />`}
    ${m && m.kind === 'revoke' && html`<${Confirm} title="Revoke key" onDone=${close}
      message=${`Revoke ${m.item.key_alias || m.item.key_name}? Its requests fail from now on; this cannot be undone.`}
      action=${() => api('../key/delete', { method: 'POST', body: { keys: [m.item.token] } })} />`}
    ${m && m.kind === 'edit-team' && html`<${EditTeam} item=${m.item} models=${data.models} onDone=${close} />`}
    ${m && m.kind === 'delete-team' && html`<${Confirm} title="Delete team" onDone=${close}
      message=${`Delete team ${m.item.team_alias || m.item.team_id}? Its ${m.item.key_count} key(s) are deleted with it.`}
      action=${() => api('../team/delete', { method: 'POST', body: { team_ids: [m.item.team_id] } })} />`}`;
}
