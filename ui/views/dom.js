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

export function time(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString(undefined, { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}
