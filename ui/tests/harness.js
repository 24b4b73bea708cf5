// Serves ui/ on loopback and opens it in Debian's Chromium with the fake
// bridge installed, for the view tests.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('..', import.meta.url));
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };

export async function serveUi() {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    const file = path === '/' ? 'index.html' : path;
    try {
      const body = await readFile(join(root, file));
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

/// The UI served on loopback and one Chromium; each test opens a fresh
/// page (with a fresh fake backend) from it, so no test sees another's state.
export async function openUi() {
  const ui = await serveUi();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    async page() {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const errors = [];
      page.on('pageerror', (err) => errors.push(err));
      await page.addInitScript({ path: fileURLToPath(new URL('./fake-bridge.js', import.meta.url)) });
      await page.goto(ui.url);
      await page.getByTestId('state').filter({ hasText: 'open' }).waitFor();
      return { page, errors };
    },
    async close() { await browser.close(); ui.close(); },
  };
}

export function event(feed, seq, data = { n: seq }) {
  return { t: 'event', feed, seq, epoch: 'e1', ts: Date.now(), data };
}
