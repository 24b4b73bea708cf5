// Small DOM helpers shared by the views.

export const $ = (selector, root = document) => root.querySelector(selector);

/** Creates an element; `props` sets attributes (dataset via data-*), text via `text`. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') node.textContent = value;
    else if (key === 'className') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2).toLowerCase(), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

export function showError(node, err) {
  if (!err) { node.hidden = true; node.textContent = ''; return; }
  node.hidden = false;
  node.textContent = err.message ?? String(err);
}

// Formatters are made once: `toLocaleTimeString` and friends build a new
// one per call, which in WebKit costs about a millisecond; at a thousand
// rows a second that alone stalled the live view for 100+ ms per frame.
const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
const day = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'numeric', day: 'numeric' });
const number = new Intl.NumberFormat();

export function time(ms) {
  const d = new Date(ms);
  return clock.format(d) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

export function date(ms) {
  return day.format(new Date(ms));
}

export function count(n) {
  return number.format(n);
}
