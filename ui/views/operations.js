// The GraphQL profile's feeds, one row each: the feed's name, its query,
// its variables (JSON) and where each result holds its data and seq. The
// rows edit the profile's `feeds` object; the backend's loader judges it
// (a query that does not parse is refused at its row).

import { el } from './dom.js';

function input(key, value, placeholder) {
  const node = el('input', { className: 'mono', spellcheck: 'false', placeholder });
  if (key) node.dataset.key = key;
  node.value = value ?? '';
  return node;
}

function json(text) {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  try { return JSON.parse(trimmed); } catch { return trimmed; }
}

/// `feeds` as rows; `onChange(feeds)` gets the whole object after an edit.
export function operationsEditor(feeds, onChange) {
  const rows = el('div', { className: 'operations' });
  rows.dataset.testid = 'graphql-feeds';

  function collect() {
    const next = {};
    for (const row of rows.querySelectorAll('.operation')) {
      const [name, query, variables, data, seq] = row.querySelectorAll('input, textarea');
      const feed = name.value.trim();
      if (!feed) continue;
      const op = { query: query.value };
      for (const [key, value] of [['variables', json(variables.value)], ['data', data.value.trim()], ['seq', seq.value.trim()]]) {
        if (value !== undefined && value !== '') op[key] = value;
      }
      next[feed] = op;
    }
    onChange(next);
  }

  function row(name, op) {
    const query = el('textarea', { className: 'mono', rows: 3, spellcheck: 'false', placeholder: 'subscription { … }' });
    query.dataset.key = `feeds.${name}.query`;
    query.value = op.query ?? '';
    const remove = el('button', { type: 'button', className: 'ghost small', text: 'Remove' });
    remove.dataset.testid = 'graphql-feed-remove';
    const node = el('fieldset', { className: 'operation' },
      el('label', {}, 'Feed', input(null, name, 'prices')),
      el('label', {}, 'Query', query),
      el('label', {}, 'Variables (JSON; {since} replays)', input(`feeds.${name}.variables`, op.variables === undefined ? '' : JSON.stringify(op.variables), '{"since": "{since}"}')),
      el('label', {}, 'Data at (pointer into the result)', input(`feeds.${name}.data`, op.data, '/data')),
      el('label', {}, 'Seq at (pointer into the result)', input(`feeds.${name}.seq`, op.seq, '(none: no ordering)')),
      remove);
    node.dataset.testid = 'graphql-feed-row';
    node.addEventListener('change', collect);
    remove.addEventListener('click', () => { node.remove(); collect(); });
    return node;
  }

  for (const [name, op] of Object.entries(feeds ?? {})) rows.append(row(name, op));
  const add = el('button', { type: 'button', className: 'ghost small', text: '+ Feed' });
  add.dataset.testid = 'graphql-feed-add';
  add.addEventListener('click', () => add.before(row('', { query: 'subscription {  }' })));
  rows.append(add);
  return rows;
}
