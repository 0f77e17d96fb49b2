// The review console: sign-in, then per role the reviewer's three columns (corp / people /
// search → conversations or hits → timeline), the auditor's access log, the admin's user list.
// Everything comes from the review API with the session cookie; the CSRF token of the session is
// kept in memory only (from /api/login or /api/me) and sent with every POST.
import { t, applyLabels, toggleLang, lang } from '/assets/i18n.js';
import { h, fmtTime, fmtDay, message, snippet } from '/assets/render.js';

const $ = (id) => document.getElementById(id);
let csrf = null;
/** The corps the signed-in reviewer may read (from /api/corps). */
let corpIds = [];

/** A JSON.parse reviver that keeps integers beyond 2^53 as their digits (a string) where the
 * browser gives the source text (Chrome 114+); the raw cards use the server's text anyway. */
function exact(key, value, context) {
  if (typeof value === 'number' && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)) {
    return context.source;
  }
  return value;
}

/** A call of the API: the JSON answer, or an Error with `.status`. */
async function api(path, { method = 'GET', body } = {}) {
  const init = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && csrf) init.headers['X-CSRF-Token'] = csrf;
  const r = await fetch(path, init);
  let data = null;
  try { data = JSON.parse(await r.text(), exact); } catch { /* not JSON */ }
  if (!r.ok) {
    const e = new Error((data && data.error) || r.statusText);
    e.status = r.status;
    throw e;
  }
  return data;
}

const enc = encodeURIComponent;

function toast(text) {
  const el = $('toast');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 5000);
}

function failed(e) {
  if (e.status === 401) return showLogin();
  toast(e.status === 404 ? t('not_found') : `${t('error')}: ${e.message}`);
}

/** A timeline cursor at (time, seq), as the API makes them (base64url of `[time,seq]`). */
function cursorAt(time, seq) {
  return btoa(JSON.stringify([Number(time), Number(seq)])).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// ---- views --------------------------------------------------------------------------------------

function show(view) {
  for (const id of ['login-view', 'review-view', 'audit-view', 'admin-view']) $(id).hidden = id !== view;
}

function showLogin() {
  csrf = null;
  S.corp = null;
  corpIds = [];
  $('toast').hidden = true;
  $('who').textContent = '';
  $('logout').hidden = true;
  show('login-view');
  $('username').focus();
}

async function signedIn(me) {
  csrf = me.csrf_token;
  $('who').textContent = `${me.username} · ${me.role}`;
  $('logout').hidden = false;
  if (me.role === 'reviewer') {
    show('review-view');
    await startReview();
  } else if (me.role === 'auditor') {
    show('audit-view');
    await startAudit();
  } else {
    show('admin-view');
    await startAdmin();
  }
}

// ---- reviewer -------------------------------------------------------------------------------------

const S = {
  corp: null, person: null, convNext: null, conv: null, convInfo: null, self: null,
  older: null, newer: null, loading: false, search: null,
};

/** The location: `#corp=…&conv=…&msg=…` (what is open), so that a reload or a link lands there;
 * `#corp=…&msg=…` alone is a message's permalink, `at=<ms>` a date jumped to. */
function route() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { corp: p.get('corp'), conv: p.get('conv'), msg: p.get('msg'), time: p.get('t'), seq: p.get('s'),
    at: p.get('at') };
}

function setRoute(r) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(r)) if (v !== null && v !== undefined && v !== '') p.set(k, v);
  history.replaceState(null, '', `#${p}`);
}

async function startReview() {
  const { corps } = await api('/api/corps');
  corpIds = corps.map((c) => c.corpid);
  $('corp').replaceChildren(...corps.map((c) => h('option', { value: c.corpid },
    `${c.name || c.corpid} (${t('count', { n: c.messages })})`)));
  await applyRoute();
}

/** Opens what the location names (on start, and when a link or the user changes the hash). */
async function applyRoute() {
  const r = route();
  if (r.corp && !corpIds.includes(r.corp)) {
    // Not granted, or no such corp: the two are never told apart.
    clearTimeline();
    $('tl-title').textContent = t('not_found');
    toast(t('not_found'));
    return;
  }
  const corp = r.corp ?? S.corp ?? corpIds[0];
  if (!corp) return;
  let lists = null;
  if (corp !== S.corp) {
    $('corp').value = corp;
    // The lists load while the timeline does (pickCorp clears the timeline before it awaits).
    lists = pickCorp(corp);
  } else if (!r.conv) {
    // The corp alone: back to its conversation list.
    clearTimeline();
    await loadConversations(true);
  }
  let open = null;
  if (r.conv && r.at) open = openConversation(r.conv, null, null, Number(r.at));
  // A link without the message's seq (an alert's deep link): the message is looked up first.
  else if (r.msg && !(r.time && r.seq)) open = openMessage(r.msg);
  else if (r.conv) open = openConversation(r.conv, null, r.msg && r.time ? { msgid: r.msg, time: r.time, seq: r.seq } : null);
  else if (r.msg) open = openMessage(r.msg);
  await Promise.all([lists, open]);
}

/** Opens the timeline of message `msgid` of the current corp at that message (a permalink, a
 * revoked message that is not on the page). */
async function openMessage(msgid) {
  try {
    const m = await api(`/api/corps/${enc(S.corp)}/messages/${enc(msgid)}`);
    await openConversation(m.conversation, null, { msgid: m.msgid, time: m.time, seq: m.seq });
  } catch (e) {
    $('tl-title').textContent = e.status === 404 ? t('not_found') : t('error');
    failed(e);
  }
}

async function pickCorp(corp) {
  S.corp = corp;
  S.person = null;
  setRoute({ corp });
  clearTimeline();
  await Promise.all([loadPeople(), loadConversations(true)]);
}

async function loadPeople() {
  const { people } = await api(`/api/corps/${enc(S.corp)}/people?limit=1000`);
  $('people-ids').replaceChildren(...people.map((p) => h('option', { value: p.id })));
  const all = h('li', {}, h('button', { type: 'button', class: 'item active', 'data-person': '',
    onclick: (e) => pickPerson(null, e.currentTarget) }, t('everyone')));
  $('people').replaceChildren(all, ...people.map((p) => h('li', {},
    h('button', { type: 'button', class: 'item', 'data-person': p.id, onclick: (e) => pickPerson(p.id, e.currentTarget) },
      h('span', { class: 'name' }, p.id),
      h('span', { class: `tag ${p.kind}` }, t(p.kind)),
      h('span', { class: 'sub' }, `${p.messages_sent}`)))));
}

async function pickPerson(id, button) {
  S.person = id;
  for (const b of $('people').querySelectorAll('.item')) b.classList.toggle('active', b === button);
  await loadConversations(true);
}

function convTitle(c) {
  if (c.kind === 'group') return c.name || `${t('group')} ${c.roomid}`;
  if (c.kind === 'undecryptable') return t('undecryptable');
  return (c.participants ?? []).join(' ↔ ');
}

async function loadConversations(fresh) {
  $('convs-back').hidden = true;
  $('search-export').hidden = true;
  $('convs-title').textContent = t('conversations');
  if (fresh) { $('convs').replaceChildren(); S.convNext = null; }
  const q = new URLSearchParams({ limit: '50' });
  if (S.person) q.set('person', S.person);
  if (S.convNext && !fresh) q.set('cursor', S.convNext);
  try {
    const page = await api(`/api/corps/${enc(S.corp)}/conversations?${q}`);
    S.convNext = page.next;
    $('convs-more').hidden = !page.next;
    $('convs').append(...page.conversations.map((c) => h('li', {},
      h('button', { type: 'button', class: 'item conv', 'data-key': c.key, 'data-kind': c.kind,
        onclick: (e) => { markActive(e.currentTarget); openConversation(c.key, c); } },
        h('div', { class: 'row' },
          h('span', { class: `tag ${c.kind}` }, t(c.kind)),
          h('span', { class: 'name', title: c.kind === 'group' ? c.roomid : null }, convTitle(c)),
          h('span', { class: 'sub right' }, c.messages != null ? t('count', { n: c.messages }) : '')),
        h('div', { class: 'row' },
          h('span', { class: 'last' }, c.last_message ? `${c.last_message.sender}: ${c.last_message.text}` : ''),
          h('time', { class: 'sub right' }, fmtTime(c.last_time)))))));
  } catch (e) { failed(e); }
}

function markActive(button) {
  for (const b of $('convs').querySelectorAll('.item')) b.classList.toggle('active', b === button);
}

function clearTimeline() {
  S.conv = null;
  S.convInfo = null;
  $('tl-msgs').replaceChildren();
  $('tl-older').hidden = true;
  $('tl-newer').hidden = true;
  $('tl-export').hidden = true;
  $('tl-jump').hidden = true;
  $('tl-members').textContent = '';
  $('f-conv').disabled = true;
  $('tl-title').textContent = t('pick_conv');
}

/** A local date (`YYYY-MM-DD` of a date input) as ms: its local midnight (+ `days`). */
function dateMs(value, days = 0) {
  const [y, m, d] = value.split('-').map(Number);
  return new Date(y, m - 1, d + days).getTime();
}

function dateValue(ms) {
  const d = new Date(Number(ms));
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** The timeline's header: the conversation's name, and a group's members when known. */
function showHeader(title, members) {
  $('tl-title').textContent = title;
  $('tl-title').title = title;
  const el = $('tl-members');
  if (members && members.length) {
    el.textContent = `${t('members', { n: members.length })}: ${members.join(', ')}`;
    el.title = members.join(', ');
  } else {
    el.textContent = '';
    el.title = '';
  }
}

/** Performance marks of the first page of a timeline: `conv-open` when asked for, `conv-painted`
 * once its bubbles are in the DOM and a frame has been painted (the measure `conv-paint`). */
function markOpen() {
  performance.clearMarks('conv-open');
  performance.clearMarks('conv-painted');
  performance.clearMeasures('conv-paint');
  performance.mark('conv-open');
}

function markPainted(key) {
  requestAnimationFrame(() => setTimeout(() => {
    if (S.conv !== key) return;
    performance.mark('conv-painted');
    performance.measure('conv-paint', 'conv-open', 'conv-painted');
    document.body.dataset.painted = key;
  }, 0));
}

/** The full-size image over everything; focus goes to it and back where it was. */
let lightboxFrom = null;
function closeLightbox() {
  $('lightbox').hidden = true;
  $('lightbox-img').removeAttribute('src');
  lightboxFrom?.focus();
  lightboxFrom = null;
}

const ctx = {
  get self() { return S.self; },
  openImage(url) {
    lightboxFrom = document.activeElement;
    $('lightbox-img').src = url;
    $('lightbox').hidden = false;
    $('lightbox').focus();
  },
  jumpTo(msgid) { if (!highlight(msgid)) openMessage(msgid); },
};

function highlight(msgid, block = 'center') {
  const el = $('tl-msgs').querySelector(`[data-msgid="${CSS.escape(msgid)}"]`);
  if (!el) return false;
  for (const o of $('tl-msgs').querySelectorAll('.hit')) o.classList.remove('hit');
  el.classList.add('hit');
  // At the top: with its day separator when it opens a day.
  const day = el.previousElementSibling?.classList.contains('day') ? el.previousElementSibling : null;
  (block === 'start' && day ? day : el).scrollIntoView({ block });
  return true;
}

/** Messages as nodes, with a day separator before each new day (`prevTime`: the message before). */
function nodes(messages, prevTime) {
  const out = [];
  let day = prevTime ? fmtDay(prevTime) : null;
  for (const m of messages) {
    const d = fmtDay(m.time);
    if (d !== day) out.push(h('div', { class: 'day', 'data-day': d }, d));
    day = d;
    out.push(message(m, ctx));
  }
  return out;
}

/** Opens conversation `key` (`conv`: its list entry, if known), at the newest messages, at message
 * `at` ({msgid, time, seq}) or around the time `atMs`. */
async function openConversation(key, conv, at, atMs) {
  markOpen();
  delete document.body.dataset.painted;
  conv = conv ?? (S.convInfo?.key === key ? S.convInfo : null);
  if (key !== S.conv) $('f-conv').checked = false;
  clearTimeline();
  S.conv = key;
  S.convInfo = conv;
  $('f-conv').disabled = conv?.kind === 'undecryptable';
  const participants = conv?.participants ?? [];
  S.self = S.person && (participants.includes(S.person) || !conv) ? S.person : participants[0] ?? null;
  showHeader(conv ? convTitle(conv) : '…', null);
  const base = `/api/corps/${enc(S.corp)}/conversations/${enc(key)}`;
  $('export-csv').href = `${base}/export?format=csv`;
  $('export-jsonl').href = `${base}/export?format=jsonl`;
  $('export-csv').setAttribute('download', '');
  $('export-jsonl').setAttribute('download', '');
  setRoute({ corp: S.corp, conv: key, msg: at?.msgid, t: at?.time, s: at?.seq, at: atMs });
  const q = new URLSearchParams({ limit: '50' });
  if (at) q.set('before', cursorAt(at.time, Number(at.seq) + 1));
  else if (atMs !== undefined && atMs !== null) q.set('at', String(atMs));
  try {
    const page = await api(`${base}/messages?${q}`);
    if (S.conv !== key) return;
    if (!conv) {
      const senders = [...new Set(page.messages.map((m) => m.sender).filter(Boolean))];
      // A group opened from a link or a hit: right only for the chosen person (else all left).
      const first = page.kind === 'group' ? null : senders[0] ?? null;
      S.self = S.person && senders.includes(S.person) ? S.person : first;
      S.convInfo = { key, kind: page.kind, roomid: page.roomid, name: page.name,
        participants: page.participants ?? senders };
    }
    const title = page.kind === 'group' ? (page.name || `${t('group')} ${page.roomid ?? ''}`)
      : conv ? convTitle(conv) : S.convInfo.participants.join(' ↔ ');
    showHeader(title, page.members);
    $('tl-export').hidden = false;
    $('tl-jump').hidden = false;
    if (conv?.first_time) $('tl-date').min = dateValue(conv.first_time);
    if (conv?.last_time) $('tl-date').max = dateValue(conv.last_time);
    $('tl-msgs').replaceChildren(...nodes(page.messages, null));
    S.older = page.older;
    S.newer = page.newer;
    $('tl-older').hidden = !S.older;
    $('tl-newer').hidden = !S.newer;
    if (at) {
      if (S.newer) await loadNewer();
      highlight(at.msgid);
    } else if (page.anchor) {
      $('tl-date').value = dateValue(atMs);
      highlight(page.anchor, 'start');
    } else {
      $('timeline').scrollTop = $('timeline').scrollHeight;
    }
    markPainted(key);
    observe();
  } catch (e) {
    $('tl-title').textContent = e.status === 404 ? t('not_found') : t('error');
    failed(e);
  }
}

async function loadOlder() {
  if (!S.older || S.loading) return;
  S.loading = true;
  const key = S.conv;
  try {
    const page = await api(`/api/corps/${enc(S.corp)}/conversations/${enc(key)}/messages?limit=50&before=${enc(S.older)}`);
    if (S.conv !== key) return;
    const tl = $('timeline');
    const before = tl.scrollHeight - tl.scrollTop;
    const list = $('tl-msgs');
    const firstDay = list.querySelector('.day');
    const lastTime = page.messages[page.messages.length - 1]?.time;
    // The old first separator goes when the page ends on the same day.
    if (firstDay && lastTime && fmtDay(lastTime) === firstDay.dataset.day) firstDay.remove();
    list.prepend(...nodes(page.messages, null));
    tl.scrollTop = tl.scrollHeight - before;
    S.older = page.older;
    $('tl-older').hidden = !S.older;
  } catch (e) { failed(e); } finally { S.loading = false; }
}

async function loadNewer() {
  if (!S.newer || S.loading) return;
  S.loading = true;
  const key = S.conv;
  try {
    const page = await api(`/api/corps/${enc(S.corp)}/conversations/${enc(key)}/messages?limit=50&after=${enc(S.newer)}`);
    if (S.conv !== key) return;
    const times = [...$('tl-msgs').querySelectorAll('time')];
    const prev = times.length ? Date.parse(times[times.length - 1].getAttribute('datetime')) : null;
    $('tl-msgs').append(...nodes(page.messages, prev));
    S.newer = page.messages.length ? page.newer : null;
    $('tl-newer').hidden = !S.newer;
  } catch (e) { failed(e); } finally { S.loading = false; }
}

/** Infinite scroll both ways: the load buttons load when they come into view. */
let observer = null;
function observe() {
  if (!('IntersectionObserver' in window)) return;
  observer?.disconnect();
  observer = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      if (e.target.id === 'tl-older') loadOlder();
      if (e.target.id === 'tl-newer') loadNewer();
    }
  }, { root: $('timeline'), rootMargin: '200px' });
  observer.observe($('tl-older'));
  observer.observe($('tl-newer'));
}

/** The search's parameters: the query and the filters (dates are local days: from its start,
 * to the end of the second). */
function searchParams() {
  const q = new URLSearchParams({ q: $('q').value.trim(), corp: S.corp });
  if ($('f-from').value) q.set('from', String(dateMs($('f-from').value)));
  if ($('f-to').value) q.set('to', String(dateMs($('f-to').value, 1)));
  if ($('f-type').value) q.set('msgtype', $('f-type').value);
  if ($('f-sender').value.trim()) q.set('sender', $('f-sender').value.trim());
  if ($('f-conv').checked && S.conv) q.set('conversation', S.conv);
  return q;
}

function hitPlace(hit) {
  if (hit.conversation_name) return hit.conversation_name;
  if (hit.roomid) return `${t('group')} ${hit.roomid}`;
  return '';
}

async function runSearch(cursor) {
  // The filters as they were when the search ran: its further pages and its export use them.
  if (!cursor) S.searchQ = searchParams();
  const q = new URLSearchParams(S.searchQ);
  q.set('limit', '50');
  if (cursor) q.set('cursor', cursor);
  try {
    const r = await api(`/api/search?${q}`);
    if (!cursor) $('convs').replaceChildren();
    $('convs-title').textContent = `${t('results')} (${r.total})`;
    $('convs-back').hidden = false;
    const exp = new URLSearchParams(S.searchQ);
    exp.set('format', 'csv');
    $('search-export').href = `/api/search/export?${exp}`;
    $('search-export').setAttribute('download', '');
    $('search-export').hidden = false;
    S.search = r.next;
    S.convNext = null;
    $('convs-more').hidden = !r.next;
    if (!r.hits.length && !cursor) $('convs').append(h('li', { class: 'sub' }, t('no_results')));
    $('convs').append(...r.hits.map((hit) => h('li', {},
      h('button', { type: 'button', class: 'item hit-item', 'data-msgid': hit.msgid, 'data-sender': hit.sender,
        'data-msgtype': hit.msgtype, 'data-time': hit.time, 'data-conversation': hit.conversation,
        onclick: (e) => { markActive(e.currentTarget);
          openConversation(hit.conversation, null, { msgid: hit.msgid, time: hit.time, seq: hit.seq }); } },
        h('div', { class: 'row' }, h('span', { class: 'name' }, hit.sender), h('span', { class: 'tag' }, hit.msgtype),
          h('time', { class: 'sub right' }, fmtTime(hit.time))),
        hitPlace(hit) ? h('div', { class: 'sub place' }, hitPlace(hit)) : null,
        h('div', { class: 'snippet' }, snippet(hit.snippet))))));
  } catch (e) { failed(e); }
}

// ---- auditor, admin ----------------------------------------------------------------------------

let logBefore = null;

async function startAudit() {
  const first = await api('/api/access-log?limit=1');
  const last = first.head?.n ?? 0;
  logBefore = last + 1;
  $('log-rows').replaceChildren();
  await loadLog();
  await verify();
}

async function loadLog() {
  const after = Math.max(0, logBefore - 501);
  const limit = logBefore - 1 - after;
  if (limit <= 0) { $('log-older').hidden = true; return; }
  const page = await api(`/api/access-log?after=${after}&limit=${limit}`);
  const rows = page.entries.slice().reverse().map((e) => h('tr', {},
    h('td', {}, String(e.id)), h('td', {}, fmtTime(e.at_ms)), h('td', {}, e.username), h('td', {}, e.action),
    h('td', {}, e.corpid ?? ''), h('td', { class: 'target' }, e.target)));
  $('log-rows').append(...rows);
  logBefore = after + 1;
  $('log-older').hidden = after === 0;
}

async function verify() {
  const v = await api('/api/access-log/verify');
  const el = $('verify');
  el.classList.toggle('ok', v.intact);
  el.classList.toggle('bad', !v.intact);
  el.textContent = v.intact ? `✔ ${t('intact', { n: v.checked })}` : `✘ ${t('broken', { id: v.broken_id, reason: v.reason })}`;
}

async function startAdmin() {
  try {
    const r = await api('/api/users');
    const users = r.users ?? r;
    $('user-rows').replaceChildren(...users.map((u) => h('tr', {}, h('td', {}, u.username), h('td', {}, u.role),
      h('td', {}, JSON.stringify(u.corps ?? u.grants ?? '')), h('td', {}, u.disabled ? '✔' : ''))));
  } catch (e) { failed(e); }
}

// ---- wiring -------------------------------------------------------------------------------------

function wire() {
  $('lang').textContent = lang === 'en' ? '中文' : 'English';
  $('lang').addEventListener('click', toggleLang);
  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('login-error').textContent = '';
    try {
      const me = await api('/api/login', { method: 'POST', body: { username: $('username').value, password: $('password').value } });
      $('password').value = '';
      await signedIn(me);
    } catch (err) {
      $('login-error').textContent = err.status === 429 ? t('rate_limited') : err.status === 401 ? t('bad_login') : err.message;
    }
  });
  $('logout').addEventListener('click', async () => {
    try { await api('/api/logout', { method: 'POST' }); } catch { /* ended anyway */ }
    history.replaceState(null, '', '#');
    clearTimeline();
    showLogin();
  });
  $('corp').addEventListener('change', (e) => pickCorp(e.target.value));
  window.addEventListener('hashchange', () => { if (S.corp !== null || corpIds.length) applyRoute().catch(failed); });
  $('search-form').addEventListener('submit', (e) => { e.preventDefault(); runSearch(null); });
  $('convs-back').addEventListener('click', () => loadConversations(true));
  $('convs-more').addEventListener('click', () => (S.search && $('convs-back').hidden === false
    ? runSearch(S.search) : loadConversations(false)));
  $('tl-older').addEventListener('click', loadOlder);
  $('tl-jump').addEventListener('submit', (e) => {
    e.preventDefault();
    if (S.conv && $('tl-date').value) openConversation(S.conv, S.convInfo, null, dateMs($('tl-date').value));
  });
  // Arrow keys move between the items of a list (Tab moves between the columns).
  for (const list of [$('people'), $('convs')]) {
    list.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
      const items = [...list.querySelectorAll('.item')];
      const i = items.indexOf(document.activeElement);
      if (i < 0) return;
      e.preventDefault();
      items[Math.max(0, Math.min(items.length - 1, i + (e.key === 'ArrowDown' ? 1 : -1)))].focus();
    });
  }
  $('tl-newer').addEventListener('click', loadNewer);
  $('lightbox').addEventListener('click', closeLightbox);
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && !$('lightbox').hidden) closeLightbox(); });
  $('verify-go').addEventListener('click', () => verify().catch(failed));
  $('log-older').addEventListener('click', () => loadLog().catch(failed));
}

async function main() {
  // Every request stays measurable (the browser test counts them against the access log).
  performance.setResourceTimingBufferSize(100000);
  applyLabels();
  wire();
  try {
    await signedIn(await api('/api/me'));
  } catch (e) {
    if (e.status === 401) showLogin(); else failed(e);
  }
  document.body.dataset.ready = '1';
}

main();
