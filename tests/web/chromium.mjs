// Debian's Chromium, headless, as both browser tests launch it (CHROMIUM_BIN overrides the path).
import { chromium } from 'playwright-core';

const options = () => ({
  executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

// A browser that dies while it starts (seen once in CI: SIGSEGV before its first page, on the
// 14th launch of a run) says nothing about the app: it is started again, at most twice, and
// each such start is printed. A browser that starts and then fails a test fails the test.
export async function launchChromium() {
  for (let attempt = 1; ; attempt++) {
    try {
      return await chromium.launch(options());
    } catch (e) {
      if (attempt >= 3) throw e;
      console.warn(`chromium did not start (attempt ${attempt}): ${String(e.message).split('\n')[0]}; starting it again`);
    }
  }
}
