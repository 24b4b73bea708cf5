// Binary payloads per feed: which decoder the backend reads them with
// (detected MessagePack or CBOR unless chosen). The backend checks a
// setting (a protobuf file is compiled there); its refusal is shown as is.

import { $, el, showError } from './dom.js';

export function createDecodersView({ invoke }) {
  const list = $('#decoder-list');
  const error = $('#feed-error');

  function render(decoders) {
    list.replaceChildren(...Object.entries(decoders ?? {}).map(([feed, setting]) =>
      el('li', { 'data-testid': 'decoder-row', 'data-feed': feed },
        el('span', { className: 'mono', text: feed }),
        el('span', { className: 'mono muted', text: ` ${setting} ` }),
        el('button', { type: 'button', className: 'ghost small', text: 'detect', 'aria-label': `Detect ${feed}'s payloads again`,
          onclick: () => choose(feed, null) }))));
  }

  async function choose(feed, decoder) {
    try {
      render(await invoke('feed_decoder_set', { feed, decoder }));
      showError(error, null);
    } catch (err) {
      showError(error, err);
    }
  }

  $('#decoder-form').addEventListener('submit', (e) => {
    e.preventDefault();
    choose($('#decoder-feed').value.trim(), $('#decoder-setting').value.trim() || null);
  });

  return { render };
}
