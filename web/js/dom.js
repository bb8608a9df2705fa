// Tiny DOM helpers. Text from the server is only ever set as text, never as HTML.

/** The element with `data-testid="<id>"` (the page's stable hooks double as its ids). */
export function byTestId(id, root = document) {
  return root.querySelector(`[data-testid="${id}"]`);
}

/** Creates `<tag>` with attributes (`class`, `dataset`, `on<event>` handlers, others verbatim) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Shows `text` in a notice element, or hides it when `text` is empty. */
export function notice(node, text) {
  node.textContent = text || '';
  node.hidden = !text;
}

/** A local "HH:MM" (or date and time when not today) for an ISO-8601 timestamp. */
export function shortTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

// The server's rule (auth/validate.rs): an `@` at the start or after a non-username character,
// the longest run of username characters, trailing dots removed, 3 to 32 characters.
const MENTION = /(?<![A-Za-z0-9_.-])@([A-Za-z0-9_.-]+)/g;

/** Every mention in `text` as `{ index, length, name }` (index and length cover `@name`). */
function findMentions(text) {
  const found = [];
  for (const match of text.matchAll(MENTION)) {
    const name = match[1].replace(/\.+$/, '');
    if (name.length >= 3 && name.length <= 32) found.push({ index: match.index, length: name.length + 1, name });
  }
  return found;
}

/** The message text as nodes, with every `@name` wrapped in a highlighted span (`mention-me` for `me`). */
export function withMentions(text, me) {
  const nodes = [];
  let last = 0;
  for (const { index, length, name } of findMentions(text)) {
    if (index > last) nodes.push(text.slice(last, index));
    nodes.push(el('span', { class: name === me ? 'mention mention-me' : 'mention' }, text.slice(index, index + length)));
    last = index + length;
  }
  if (last < text.length) nodes.push(text.slice(last));
  return nodes;
}

/** Whether `text` mentions `@me`. */
export function mentions(text, me) {
  return findMentions(text).some((m) => m.name === me);
}
