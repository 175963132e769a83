// The chat page end to end in a real headless Chromium, driven over the DevTools protocol with
// Node's own WebSocket (no npm packages). Run by scripts/browser-test:
//   node --experimental-websocket browser_e2e.mjs CHROMIUM SERVER_URL OUT_DIR
// Types a message, waits for the streamed reply, presses 👍 (with a comment), regenerates and
// picks the better reply, then checks the rows through GET /v1/feedback; shows that model text
// with <script> and <img onerror> is displayed as text; saves screenshots (wide and phone).
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [chromium, url, out] = process.argv.slice(2);
const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const profile = mkdtempSync(join(tmpdir(), "jielong-chromium-"));
const browser = spawn(chromium, [
  "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
  "--remote-debugging-port=0", `--user-data-dir=${profile}`, "about:blank",
], { stdio: ["ignore", "ignore", "pipe"] });
const killTimer = setTimeout(() => { browser.kill("SIGKILL"); fail("timed out after 90 s"); }, 90000);

const wsUrl = await new Promise((resolve, reject) => {
  let err = "";
  browser.stderr.on("data", (d) => {
    err += d;
    const m = err.match(/DevTools listening on (ws:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
  browser.on("exit", (code) => reject(new Error(`chromium exited (${code}): ${err}`)));
}).catch((e) => fail(e.message));
const port = new URL(wsUrl).port;
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const page = targets.find((t) => t.type === "page");
const ws = new WebSocket(page.webSocketDebuggerUrl);
await new Promise((r) => ws.addEventListener("open", r));

let nextId = 1;
const pending = new Map();
const listeners = [];
ws.addEventListener("message", (ev) => {
  const msg = JSON.parse(ev.data);
  if (msg.id && pending.has(msg.id)) {
    const { resolve, reject } = pending.get(msg.id);
    pending.delete(msg.id);
    msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result);
  } else if (msg.method) {
    listeners.forEach((f) => f(msg));
  }
});
const send = (method, params = {}) => new Promise((resolve, reject) => {
  const id = nextId++;
  pending.set(id, { resolve, reject });
  ws.send(JSON.stringify({ id, method, params }));
});
const evaluate = async (expr) => {
  const r = await send("Runtime.evaluate", { expression: expr, awaitPromise: true, returnByValue: true });
  if (r.exceptionDetails) fail("page script failed: " + JSON.stringify(r.exceptionDetails));
  return r.result.value;
};
const until = async (what, expr, ms = 30000) => {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await evaluate(expr)) return;
    await sleep(100);
  }
  fail("timed out waiting for " + what);
};
const shot = async (name) => {
  const r = await send("Page.captureScreenshot", { format: "png" });
  writeFileSync(join(out, name), Buffer.from(r.data, "base64"));
  console.log("screenshot " + join(out, name));
};

// Answer the comment prompt of 👍 like a person would.
listeners.push((m) => {
  if (m.method === "Page.javascriptDialogOpening") send("Page.handleJavaScriptDialog", { accept: true, promptText: "清楚 clear" });
});
await send("Page.enable");
await send("Runtime.enable");
await send("Emulation.setDeviceMetricsOverride", { width: 1100, height: 800, deviceScaleFactor: 1, mobile: false });
await send("Page.navigate", { url: url + "/" });
await until("the page", "document.readyState === 'complete' && !!document.getElementById('composer')");
await evaluate("localStorage.clear(); location.reload(); true");
await sleep(300);
await until("the page after reload", "document.readyState === 'complete' && !!document.getElementById('composer')");

// 1. Type a message, see a streamed reply.
await evaluate(`(() => { const i = document.getElementById('input'); i.value = '第1步：模型读入前面的词'; document.getElementById('composer').requestSubmit(); return true; })()`);
await until("a streamed reply", "document.querySelectorAll('.msg.assistant').length === 1 && document.getElementById('stop').hidden && document.querySelector('.msg.assistant .content').textContent.length > 0");
const reply = await evaluate("document.querySelector('.msg.assistant .content').textContent");
console.log("reply: " + JSON.stringify(reply));

// 2. 👍 with a comment.
await evaluate("[...document.querySelectorAll('.msg.assistant .actions button')].find(b => b.textContent === '👍').click(), true");
await until("the thumbs-up saved", "document.querySelector('.msg.assistant .actions button.on') !== null");

// 3. Regenerate and pick the better one (retry a few times if a reply repeats exactly).
for (let k = 0; k < 5; k++) {
  await evaluate("[...document.querySelectorAll('.msg.assistant .actions button')].find(b => b.textContent === 'Regenerate' || b.textContent === '重新生成').click(), true");
  await sleep(200);
  await until("the regenerated reply", "document.getElementById('stop').hidden");
  if (await evaluate("document.querySelector('.pair') !== null")) break;
}
await until("the pair view", "document.querySelector('.pair') !== null", 2000);
await shot("chat-pair.png");
await evaluate("document.querySelectorAll('.pair button')[1].click(), true");
await until("the choice saved", "document.querySelector('.pair') === null");

// 4. The rows are in the database.
const rows = (await (await fetch(url + "/v1/feedback")).json()).data;
const rating = rows.find((r) => r.kind === "rating");
const pair = rows.find((r) => r.kind === "pair");
if (!rating || rating.rating !== 1 || rating.comment !== "清楚 clear" || rating.reply !== reply) fail("rating row: " + JSON.stringify(rows));
if (!rating.prompt.includes("第1步：模型读入前面的词")) fail("rating row lacks the rendered prompt: " + rating.prompt);
if (!pair || pair.rejected === pair.reply) fail("pair row: " + JSON.stringify(rows));
console.log(`feedback rows: ${rows.length} (rating ${rating.id}, pair ${pair.id})`);

// 5. Model text is never HTML: a stored reply with <script> and <img onerror> stays text.
await evaluate(`(() => {
  const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>';
  localStorage.setItem('jielong.convs', JSON.stringify([{ id: 'x', title: '<i>t</i>', created: 1,
    messages: [{ role: 'user', content: '<script>window.__pwned=3</script>' }, { role: 'assistant', content: evil }] }]));
  localStorage.setItem('jielong.current', JSON.stringify('x'));
  location.reload();
  return true;
})()`);
await sleep(300);
await until("the page with the stored conversation", "document.readyState === 'complete' && document.querySelectorAll('.msg').length === 2");
await sleep(300);
const xss = await evaluate(`({
  pwned: window.__pwned === undefined ? null : window.__pwned,
  elements: document.querySelectorAll('#messages img, #messages script, #messages b, #conversations i').length,
  text: document.querySelector('.msg.assistant .content').textContent,
})`);
if (xss.pwned !== null || xss.elements !== 0 || !xss.text.includes("<img src=x onerror=")) fail("model text became HTML: " + JSON.stringify(xss));
console.log("escaping: <script> and <img onerror> shown as text");

// 6. A phone-sized screen, in Chinese.
await send("Emulation.setDeviceMetricsOverride", { width: 390, height: 780, deviceScaleFactor: 2, mobile: true });
await evaluate("document.getElementById('lang').click(), true");
await until("Chinese labels", "document.getElementById('send').textContent === '发送'");
await sleep(500); // the sidebar slides away (a 0.2 s transition)
const narrow = await evaluate("document.getElementById('sidebar').getBoundingClientRect().right <= 1 && document.getElementById('toggle-side').offsetWidth > 0");
if (!narrow) fail("on a narrow screen the conversation list should fold away behind ☰");
await shot("chat-phone-zh.png");

clearTimeout(killTimer);
ws.close();
browser.kill("SIGKILL");
console.log("browser e2e: ok");
process.exit(0);
