// jielong's chat page: plain JavaScript, no build step, no network beyond this server.
// Everything the model writes is put into the page with textContent (never parsed as HTML), so a
// reply containing <script> or <img onerror> is shown as the characters it is.
"use strict";

const T = {
  en: { newChat: "New chat", settings: "Settings", system: "System prompt", showAlts: "Show each token's top alternatives",
    apiKey: "API key (if the server needs one)", send: "Send", stop: "Stop", placeholder: "Type a message (Enter sends, Shift+Enter for a new line)",
    user: "You", assistant: "Model", regenerate: "Regenerate", edit: "Edit & branch", comment: "Optional comment:",
    better: "Which reply is better?", thisOne: "This one", saved: "Thanks: feedback saved", untitled: "New conversation",
    del: "Delete", branch: "branch", error: "Error", stopped: "(stopped)", editPrompt: "Edit the message (a new branch keeps the old one):" },
  zh: { newChat: "新对话", settings: "设置", system: "系统提示", showAlts: "显示每个词元的候选及概率",
    apiKey: "API 密钥（服务器需要时）", send: "发送", stop: "停止", placeholder: "输入消息（回车发送，Shift+回车换行）",
    user: "你", assistant: "模型", regenerate: "重新生成", edit: "编辑并分支", comment: "可选的评论：",
    better: "哪个回复更好？", thisOne: "这个更好", saved: "谢谢，反馈已保存", untitled: "新对话",
    del: "删除", branch: "分支", error: "错误", stopped: "（已停止）", editPrompt: "编辑这条消息（新分支会保留原对话）：" },
};

const $ = (id) => document.getElementById(id);
const store = {
  get(k, d) { try { const v = localStorage.getItem("jielong." + k); return v === null ? d : JSON.parse(v); } catch { return d; } },
  set(k, v) { localStorage.setItem("jielong." + k, JSON.stringify(v)); },
};

let lang = store.get("lang", (navigator.language || "en").startsWith("zh") ? "zh" : "en");
let convs = store.get("convs", []);
let current = store.get("current", null);
let modelId = null;
let controller = null;

function t(k) { return T[lang][k] || T.en[k] || k; }

function applyLang() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  $("lang").textContent = lang === "zh" ? "English" : "中文";
}

function save() { store.set("convs", convs); store.set("current", current); }
function conv() { return convs.find((c) => c.id === current); }
function newId() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 7); }

function newConv(messages, title) {
  const c = { id: newId(), title: title || "", messages: messages || [], created: Date.now() };
  convs.unshift(c);
  current = c.id;
  save();
  return c;
}

function settings() {
  const num = (id) => { const v = $(id).value; return v === "" ? undefined : Number(v); };
  const s = { temperature: num("temperature"), top_p: num("top_p"), top_k: num("top_k"), min_p: num("min_p"), max_tokens: num("max_tokens") };
  const seed = num("seed");
  if (seed !== undefined) s.seed = seed;
  return s;
}

function saveSettings() {
  const ids = ["system", "temperature", "top_p", "top_k", "min_p", "max_tokens", "seed", "api-key"];
  const s = {};
  ids.forEach((id) => { s[id] = $(id).value; });
  s["show-alts"] = $("show-alts").checked;
  store.set("settings", s);
}

function loadSettings() {
  const s = store.get("settings", {});
  Object.entries(s).forEach(([id, v]) => {
    const el = $(id);
    if (!el) return;
    if (el.type === "checkbox") el.checked = !!v; else el.value = v;
  });
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

// The messages sent to the model: the system prompt, then the conversation up to `upto`.
function apiMessages(c, upto) {
  const out = [];
  const system = $("system").value.trim();
  if (system) out.push({ role: "system", content: system });
  c.messages.slice(0, upto).forEach((m) => out.push({ role: m.role, content: m.content }));
  return out;
}

function renderList() {
  const ul = $("conversations");
  ul.replaceChildren();
  convs.forEach((c) => {
    const li = document.createElement("li");
    if (c.id === current) li.className = "active";
    const span = document.createElement("span");
    span.textContent = c.title || t("untitled");
    li.appendChild(span);
    const del = document.createElement("button");
    del.textContent = "×";
    del.title = t("del");
    del.onclick = (e) => { e.stopPropagation(); convs = convs.filter((x) => x.id !== c.id); if (current === c.id) current = convs[0] ? convs[0].id : null; save(); render(); };
    li.appendChild(del);
    li.onclick = () => { current = c.id; save(); $("sidebar").classList.remove("open"); render(); };
    ul.appendChild(li);
  });
}

// A reply's text; with token log-probabilities, one span per token whose alternatives show
// on click (all through textContent).
function fillContent(el, m) {
  el.replaceChildren();
  if ($("show-alts").checked && m.tokens && m.tokens.length) {
    m.tokens.forEach((tok) => {
      const s = document.createElement("span");
      s.className = "tok" + (Math.exp(tok.logprob) < 0.2 ? " low" : "");
      s.textContent = tok.token;
      s.title = (Math.exp(tok.logprob) * 100).toFixed(1) + "%";
      s.onclick = () => showAlts(tok);
      el.appendChild(s);
    });
  } else {
    el.textContent = m.content;
  }
}

function showAlts(tok) {
  const box = $("alt-view");
  box.replaceChildren();
  const table = document.createElement("table");
  (tok.top_logprobs || []).forEach((a) => {
    const tr = document.createElement("tr");
    const td1 = document.createElement("td");
    td1.textContent = JSON.stringify(a.token);
    const td2 = document.createElement("td");
    td2.textContent = (Math.exp(a.logprob) * 100).toFixed(2) + "%";
    tr.append(td1, td2);
    table.appendChild(tr);
  });
  box.appendChild(table);
  box.hidden = false;
}

function button(label, onclick, cls) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (cls) b.className = cls;
  b.onclick = onclick;
  return b;
}

function render() {
  renderList();
  const box = $("messages");
  box.replaceChildren();
  $("alt-view").hidden = true;
  const c = conv();
  if (!c) return;
  c.messages.forEach((m, i) => {
    const div = document.createElement("div");
    div.className = "msg " + m.role;
    const role = document.createElement("div");
    role.className = "role";
    role.textContent = m.role === "user" ? t("user") : t("assistant");
    const content = document.createElement("div");
    content.className = "content";
    fillContent(content, m);
    div.append(role, content);
    const actions = document.createElement("div");
    actions.className = "actions";
    if (m.role === "user") {
      actions.appendChild(button(t("edit"), () => editAndBranch(i)));
    } else {
      actions.appendChild(button("👍", () => rate(i, "up"), m.rating === "up" ? "on" : ""));
      actions.appendChild(button("👎", () => rate(i, "down"), m.rating === "down" ? "on" : ""));
      if (i === c.messages.length - 1) actions.appendChild(button(t("regenerate"), () => regenerate()));
    }
    div.appendChild(actions);
    if (m.pair) div.appendChild(pairView(i, m));
    box.appendChild(div);
  });
  box.scrollTop = box.scrollHeight;
}

// After a regenerate: both replies side by side, and a choice.
function pairView(i, m) {
  const wrap = document.createElement("div");
  const q = document.createElement("div");
  q.className = "role";
  q.textContent = t("better");
  wrap.appendChild(q);
  const grid = document.createElement("div");
  grid.className = "pair";
  [m.pair.a, m.pair.b].forEach((text, k) => {
    const cell = document.createElement("div");
    const p = document.createElement("div");
    p.textContent = text;
    cell.appendChild(p);
    cell.appendChild(button(t("thisOne"), () => choose(i, k)));
    grid.appendChild(cell);
  });
  wrap.appendChild(grid);
  return wrap;
}

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (!r.ok) {
    let msg = r.status + "";
    try { msg = (await r.json()).error.message; } catch { /* not JSON */ }
    throw new Error(msg);
  }
  return r;
}

function status(text) { $("status").textContent = text || ""; }

async function rate(i, rating) {
  const c = conv();
  const m = c.messages[i];
  const comment = window.prompt(t("comment"), "") || undefined;
  try {
    await post("/v1/feedback", { model: m.model, messages: apiMessages(c, i), reply: m.content, rating, comment, settings: m.settings || settings() });
    m.rating = rating;
    save();
    render();
    status(t("saved"));
  } catch (e) { status(t("error") + ": " + e.message); }
}

async function choose(i, k) {
  const c = conv();
  const m = c.messages[i];
  const chosen = k === 0 ? m.pair.a : m.pair.b;
  const rejected = k === 0 ? m.pair.b : m.pair.a;
  try {
    await post("/v1/feedback/compare", { model: m.model, messages: apiMessages(c, i), chosen, rejected, settings: m.settings || settings() });
    m.content = chosen;
    m.tokens = k === 0 ? m.pair.tokensA : m.pair.tokensB;
    delete m.pair;
    save();
    render();
    status(t("saved"));
  } catch (e) { status(t("error") + ": " + e.message); }
}

function editAndBranch(i) {
  const c = conv();
  const text = window.prompt(t("editPrompt"), c.messages[i].content);
  if (text === null || !text.trim()) return;
  const msgs = c.messages.slice(0, i).map((m) => ({ role: m.role, content: m.content, tokens: m.tokens }));
  msgs.push({ role: "user", content: text });
  newConv(msgs, (c.title || t("untitled")) + " · " + t("branch"));
  render();
  generate();
}

function busy(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
}

// Stream one reply into `target` (a message object) and the element `el`.
async function stream(c, upto, target, el) {
  const s = settings();
  const body = Object.assign({ model: modelId || undefined, messages: apiMessages(c, upto), stream: true }, s);
  if ($("show-alts").checked) { body.logprobs = true; body.top_logprobs = 5; }
  target.settings = s;
  target.model = modelId || undefined;
  target.content = "";
  target.tokens = [];
  controller = new AbortController();
  busy(true);
  try {
    const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!r.ok) {
      let msg = r.status + "";
      try { msg = (await r.json()).error.message; } catch { /* not JSON */ }
      throw new Error(msg);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const ch = chunk.choices && chunk.choices[0];
        if (!ch) continue;
        if (ch.delta && ch.delta.content) target.content += ch.delta.content;
        if (ch.logprobs && ch.logprobs.content) target.tokens.push(...ch.logprobs.content);
        fillContent(el, target);
        $("messages").scrollTop = $("messages").scrollHeight;
      }
    }
  } catch (e) {
    if (e.name === "AbortError") target.content += " " + t("stopped");
    else status(t("error") + ": " + e.message);
  } finally {
    controller = null;
    busy(false);
  }
}

function liveElement() {
  const els = $("messages").querySelectorAll(".msg .content");
  return els[els.length - 1];
}

async function generate() {
  const c = conv();
  const m = { role: "assistant", content: "" };
  c.messages.push(m);
  render();
  await stream(c, c.messages.length - 1, m, liveElement());
  save();
  render();
}

async function regenerate() {
  const c = conv();
  const last = c.messages[c.messages.length - 1];
  if (!last || last.role !== "assistant") return;
  const old = { content: last.content, tokens: last.tokens };
  render();
  await stream(c, c.messages.length - 1, last, liveElement());
  if (old.content && last.content !== old.content) {
    last.pair = { a: old.content, b: last.content, tokensA: old.tokens, tokensB: last.tokens };
  }
  save();
  render();
}

$("composer").onsubmit = (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text || controller) return;
  let c = conv();
  if (!c) c = newConv();
  if (!c.title) c.title = text.slice(0, 40);
  c.messages.push({ role: "user", content: text });
  $("input").value = "";
  save();
  generate();
};
$("input").onkeydown = (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
};
$("stop").onclick = () => { if (controller) controller.abort(); };
$("new-chat").onclick = () => { newConv(); render(); };
$("lang").onclick = () => { lang = lang === "zh" ? "en" : "zh"; store.set("lang", lang); applyLang(); render(); };
$("toggle-settings").onclick = () => { $("settings").hidden = !$("settings").hidden; };
$("toggle-side").onclick = () => { $("sidebar").classList.toggle("open"); };
document.querySelectorAll("#settings input, #settings textarea").forEach((el) => { el.onchange = () => { saveSettings(); render(); }; });

loadSettings();
applyLang();
render();
fetch("/v1/models", { headers: headers() })
  .then((r) => r.json())
  .then((v) => {
    // The base first, then any adapters the server was started with: a picker when there are several.
    const ids = (v.data || []).map((m) => m.id);
    if (!ids.length) return;
    const saved = store.get("model", null);
    modelId = ids.includes(saved) ? saved : ids[0];
    $("model-name").textContent = "jielong · " + ids[0];
    if (ids.length > 1) {
      const sel = $("model-pick");
      ids.forEach((id) => { const o = document.createElement("option"); o.value = id; o.textContent = id; sel.appendChild(o); });
      sel.value = modelId;
      sel.hidden = false;
      sel.onchange = () => { modelId = sel.value; store.set("model", modelId); };
    }
  })
  .catch(() => {});
