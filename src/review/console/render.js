// A message of the review API (src/review/render.rs: {msgid, seq, time, kind, sender, content,
// media, ...}) → DOM. Text is always set as text (never parsed as HTML); the one exception is a
// search snippet, rebuilt from the API's escaped text keeping only <b> (see `snippet`).
import { t, locale } from '/assets/i18n.js';

/** An element: `h('div', {class: 'x', href: u}, child, 'text', ...)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function fmtTime(ms) {
  return ms ? new Date(Number(ms)).toLocaleString(locale, { hour12: false }) : '';
}

export function fmtDay(ms) {
  return new Date(Number(ms)).toLocaleDateString(locale, { year: 'numeric', month: 'long', day: 'numeric', weekday: 'short' });
}

export function fmtSize(n) {
  if (n === null || n === undefined || n === '') return '';
  n = Number(n);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

const URL_RE = /(https?:\/\/[^\s<>"'，。）]+)/g;

/** Text with its http(s) links clickable and @mentions marked. */
export function richText(s) {
  const out = [];
  for (const [i, part] of String(s ?? '').split(URL_RE).entries()) {
    if (i % 2 === 1) {
      out.push(h('a', { href: part, target: '_blank', rel: 'noopener noreferrer' }, part));
    } else {
      for (const [j, bit] of part.split(/(@[^\s@]{1,32})/).entries()) {
        out.push(j % 2 === 1 ? h('span', { class: 'mention' }, bit) : bit);
      }
    }
  }
  return out;
}

/** A search snippet (HTML-escaped by the API, with <b> around hits) as nodes: only <b> kept. */
export function snippet(html) {
  const doc = new DOMParser().parseFromString(`<div>${html ?? ''}</div>`, 'text/html');
  const out = [];
  for (const n of doc.body.firstChild?.childNodes ?? []) {
    if (n.nodeType === Node.TEXT_NODE) out.push(n.textContent);
    else if (n.nodeName === 'B') out.push(h('b', {}, n.textContent));
    else out.push(n.textContent ?? '');
  }
  return out;
}

/** A placeholder for media not (yet) on disk: fixed size, never a broken image. */
function missing(media, cls) {
  const failed = media && media.status === 'failed';
  return h('div', { class: `media-missing ${cls}` }, t(failed ? 'download_failed' : 'not_downloaded'));
}

function image(media, ctx) {
  if (!media || media.status !== 'done' || !media.url) return missing(media, 'imgbox');
  const img = h('img', { src: media.url, loading: 'lazy', alt: '', decoding: 'async' });
  return h('button', { type: 'button', class: 'imgbox', title: t('original'),
    onclick: () => ctx.openImage(media.url) }, img);
}

function voice(c, media) {
  if (!media || media.status !== 'done' || !media.url) return missing(media, 'voicebox');
  const src = media.mp3_url || media.url;
  return h('div', { class: 'voice' },
    h('audio', { controls: true, preload: 'metadata', src }),
    h('span', { class: 'sub' }, c.play_length ? `${c.play_length}″ ` : ''),
    h('a', { href: media.url, download: '' }, t('original')));
}

function video(media) {
  if (!media || media.status !== 'done' || !media.url) return missing(media, 'videobox');
  return h('video', { class: 'videobox', controls: true, preload: 'metadata', src: media.url });
}

function fileCard(title, c, media) {
  const name = c.filename || media?.filename || '';
  const size = fmtSize(c.size ?? media?.size);
  const done = media && media.status === 'done' && media.url;
  return h('div', { class: 'card file' },
    h('div', { class: 'card-kind' }, title),
    h('div', { class: 'card-title' }, name),
    h('div', { class: 'sub' }, size),
    done ? h('a', { href: media.url, download: name || '' }, t('download')) : missing(media, 'inline'));
}

/** A card of the non-null fields of `c` (meeting, vote, calendar, ...). */
function fieldsCard(title, c) {
  const rows = Object.entries(c ?? {}).filter(([, v]) => v !== null && v !== '' && !(Array.isArray(v) && !v.length));
  return h('div', { class: 'card' }, h('div', { class: 'card-kind' }, title),
    h('dl', {}, rows.map(([k, v]) => [h('dt', {}, k),
      h('dd', {}, typeof v === 'object' ? JSON.stringify(v) : /time$/.test(k) && Number(v) > 1e9
        ? fmtTime(Number(v) < 1e11 ? Number(v) * 1000 : Number(v)) : String(v))])));
}

const CARD_TITLES = {
  meeting: 'meeting', meeting_voice_call: 'voip', voip_doc_share: 'voip', voiptext: 'voip', docmsg: 'docmsg',
  todo: 'todo', vote: 'vote', calendar: 'calendar', redpacket: 'redpacket', external_redpacket: 'redpacket',
  collect: 'collect', news: 'link', markdown: 'chatrecord', sphfeed: 'link', qydiskfile: 'file',
};

/** The body of a message or nested item of `kind` with `content`; `mediaOf(item)` its media. */
export function body(kind, c, mediaOf, ctx) {
  c = c ?? {};
  switch (kind) {
    case 'text': case 'markdown':
      return h('div', { class: 'text' }, richText(c.text));
    case 'image': return image(mediaOf(), ctx);
    case 'emotion': return image(mediaOf(), ctx);
    case 'voice': return voice(c, mediaOf());
    case 'video': return video(mediaOf());
    case 'file': return fileCard(t('file'), c, mediaOf());
    case 'link':
      return h('div', { class: 'card link' }, h('div', { class: 'card-kind' }, t('link')),
        c.url && /^https?:/.test(c.url)
          ? h('a', { class: 'card-title', href: c.url, target: '_blank', rel: 'noopener noreferrer' }, c.title || c.url)
          : h('div', { class: 'card-title' }, c.title || ''),
        h('div', { class: 'sub' }, c.description || ''));
    case 'location':
      return h('div', { class: 'card' }, h('div', { class: 'card-kind' }, `📍 ${t('location')}`),
        h('div', { class: 'card-title' }, c.title || c.address || ''),
        h('div', { class: 'sub' }, [c.address, c.latitude != null ? `${c.latitude}, ${c.longitude}` : '']
          .filter(Boolean).join(' · ')));
    case 'card':
      return h('div', { class: 'card' }, h('div', { class: 'card-kind' }, t('card')),
        h('div', { class: 'card-title' }, c.userid || ''), h('div', { class: 'sub' }, c.corpname || ''));
    case 'weapp':
      return h('div', { class: 'card' }, h('div', { class: 'card-kind' }, `${t('weapp')} · ${c.displayname || ''}`),
        h('div', { class: 'card-title' }, c.title || ''), h('div', { class: 'sub' }, c.description || ''));
    case 'chatrecord': case 'mixed':
      return h('div', { class: `card nested ${kind}` },
        h('div', { class: 'card-kind' }, `${t(kind)}${c.title ? ' · ' + c.title : ''}`),
        (c.items ?? []).map((it) => h('div', { class: 'nested-item' },
          it.time ? h('div', { class: 'sub' }, fmtTime(it.time)) : null,
          body(it.kind, it.content, () => ctx.mediaItem(it.media_item), ctx))),
        c.truncated ? h('div', { class: 'sub' }, t('truncated')) : null);
    case 'revoke':
      return h('div', { class: 'notice revoke' }, `⟲ ${t('revoked')} `,
        c.pre_msgid ? h('a', { href: '#', onclick: (e) => { e.preventDefault(); ctx.jumpTo(c.pre_msgid); } },
          t('revoked_target')) : null);
    case 'agree': case 'disagree':
      return h('div', { class: 'notice' }, `${t(kind)} · ${c.userid || ''}`);
    case 'switch':
      return h('div', { class: 'notice' }, `${t('switch')} · ${c.user || ''}`);
    case 'undecryptable':
      return h('div', { class: 'notice bad' }, `${t('undecryptable')}: ${c.reason || ''}`);
    case 'unknown':
      return h('details', { class: 'card raw' }, h('summary', {}, `${t('unknown')}: ${c.msgtype || ''}`),
        // The server's text: JSON.parse has rounded integers beyond 2^53 in `c.raw`.
        h('pre', {}, c.raw_text ?? JSON.stringify(c.raw, null, 2)));
    default:
      if (CARD_TITLES[kind]) {
        const card = fieldsCard(`${t(CARD_TITLES[kind])} (${kind})`, c);
        const m = kind === 'voip_doc_share' || kind === 'qydiskfile' ? mediaOf() : null;
        if (m && m.status === 'done' && m.url) card.append(h('a', { href: m.url, download: '' }, t('download')));
        return card;
      }
      return h('details', { class: 'card raw' }, h('summary', {}, kind),
        h('pre', {}, JSON.stringify(c, null, 2)));
  }
}

const SYSTEM = new Set(['revoke', 'agree', 'disagree', 'switch', 'undecryptable']);

/** One timeline message: a bubble, right when sent by `ctx.self`. */
export function message(m, ctx) {
  const media = m.media ?? [];
  const top = () => media.find((x) => x.item === 0) ?? media[0];
  const itemCtx = { ...ctx, mediaItem: (n) => media.find((x) => x.item === n) };
  const content = body(m.kind, m.content, top, itemCtx);
  if (SYSTEM.has(m.kind)) {
    return h('div', { class: 'msg system', 'data-msgid': m.msgid, 'data-kind': m.kind, id: `m-${m.msgid}` },
      h('span', { class: 'sub' }, `${m.sender || ''} · ${fmtTime(m.time)}`), content);
  }
  const side = m.sender && m.sender === ctx.self ? 'right' : 'left';
  return h('div', { class: `msg ${side}`, 'data-msgid': m.msgid, 'data-kind': m.kind, id: `m-${m.msgid}` },
    h('div', { class: 'meta' }, h('span', { class: 'sender' }, m.sender || '?'), ' ',
      h('time', { datetime: new Date(Number(m.time)).toISOString() }, fmtTime(m.time))),
    h('div', { class: `bubble k-${m.kind}` }, content));
}
