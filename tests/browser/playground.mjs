// Drives the playground page in headless Chromium against a real chatkit-rs server.
// Scenarios:
// - basics: get a development token, send a message and watch the reply stream in, reload and
//   see the history, rename and delete the thread.
// - attachments: a refused upload shows its error and is removed; an image (file picker) and a
//   text file (dropped on the composer) upload as chips, are sent, and show in the transcript,
//   also after a reload.
// - reasoning (a server offering the models Fast and Deep, and a slow mock model): the model
//   picker lists them; "Deep" goes into the message's inference_options; the thoughts of
//   "think about cats" stream into an open reasoning block that collapses to "Thought for N s"
//   when it is done, before the answer; after a reload it is there again, collapsed, and opens
//   on a click.
// - widgets (a server with the mcp-tasks MCP server and the widget action tasks.complete →
//   tasks__complete_task_card, then = "replace"): "add task Water the plants" adds a task (the
//   model calls add_task); "call show_task {"task_id": …}" shows its card, a widget with a
//   Complete button; Complete runs the action and the card is replaced in place by one with the
//   badge "done" and no Complete button, also after a reload.
// - hosted (a server offering the hosted tools image_generation with 2 partial images,
//   web_search and file_search over the Responses API, and a slow mock model): "image a
//   lighthouse" shows a partial image, then the final one served by this server; "search tide
//   times" and "files tide tables" show their steps with their sources and the answer's
//   citation; after a reload the image and the steps are there again.
// - questions (a server with agent.ask_user): "ask me" makes the model ask two questions, drawn
//   as a form (choices and free text); picking "Blue", typing a note and Send answer them: the
//   form shows the answers and the model's reply uses them, also after a reload.
// Screenshots go to $ARTIFACTS.
//
// usage: node playground.mjs http://127.0.0.1:PORT [basics|attachments|reasoning|widgets|hosted|questions]
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const base = process.argv[2];
const scenarioName = process.argv[3] || "basics";
const artifacts = process.env.ARTIFACTS || "browser-artifacts";
mkdirSync(artifacts, { recursive: true });
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

// A real 1×1 PNG.
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", "base64");

const step = (name) => console.log("step: " + name);

// Types `text` into the composer and sends it.
async function send(page, text) {
  await page.getByTestId("message").fill(text);
  await page.getByTestId("send").click();
}

async function signIn(page, sub) {
  await page.goto(base + "/");
  await page.getByTestId("dev-sub").fill(sub);
  await page.getByTestId("dev-token").click();
  await page.waitForFunction(() => document.getElementById("token").value.split(".").length === 3);
}

// Waits until the first element matching `selector` is an image that loaded.
async function imageLoaded(page, selector) {
  await page.waitForFunction((sel) => {
    const img = document.querySelector(sel);
    return img && img.complete && img.naturalWidth > 0;
  }, selector);
}

async function openFirstThread(page) {
  const thread = page.locator('[data-testid="thread"]').first();
  await thread.waitFor();
  await thread.click();
}

async function basics({ browser, page, shot }) {
  step("open");
  await signIn(page, "browser-user");

  step("send a message and watch it stream");
  await send(page, "Hello from the browser");
  const answer = page.locator('[data-testid="assistant_message"]');
  // Deltas arrive one by one: the text grows before it is complete.
  await answer.first().waitFor();
  await page.waitForFunction(() => {
    const el = document.querySelector('[data-testid="assistant_message"]');
    return el && el.textContent === "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7";
  });
  await page.locator('[data-testid="user_message"]', { hasText: "Hello from the browser" }).waitFor();
  await page.waitForFunction(() => document.getElementById("thread-title").textContent.startsWith("tok0"));
  await shot("1-streamed-reply");

  step("reload and see the history");
  await page.reload();
  await openFirstThread(page);
  await page.locator('[data-testid="user_message"]', { hasText: "Hello from the browser" }).waitFor();
  await page.locator('[data-testid="assistant_message"]', { hasText: "tok7" }).waitFor();
  await shot("2-history-after-reload");

  step("rename");
  page.once("dialog", (d) => d.accept("Renamed in the browser"));
  await page.getByTestId("rename").click();
  await page.locator('[data-testid="thread"]', { hasText: "Renamed in the browser" }).waitFor();
  await shot("3-renamed");

  if (process.env.ADMIN_TOKEN) {
    step("admin view lists the live thread");
    const admin = await browser.newPage({ viewport: { width: 1200, height: 600 } });
    await admin.goto(base + "/admin");
    await admin.getByTestId("admin-token").fill(process.env.ADMIN_TOKEN);
    await admin.getByTestId("admin-load").click();
    await admin.locator('[data-testid="live-thread"]', { hasText: "browser-user" }).first().waitFor();
    await admin.locator('[data-testid="instances"] tr').first().waitFor();
    await admin.screenshot({ path: join(artifacts, "3b-admin-view.png") });
    await admin.close();
  }

  step("delete");
  page.once("dialog", (d) => d.accept());
  await page.getByTestId("delete").click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="thread"]').length === 0);
  await shot("4-deleted");
}

async function attachments({ page, shot }) {
  const fileInput = page.getByTestId("file-input");
  const chips = page.locator('[data-testid="pending-attachment"]');

  step("open");
  await signIn(page, "attachment-user");

  step("a file that is not what its type says is refused, and the chip says why");
  await fileInput.setInputFiles({ name: "fake.png", mimeType: "image/png", buffer: Buffer.from("not a png at all") });
  const refused = page.locator('[data-testid="pending-attachment"][data-state="error"]', { hasText: "fake.png" });
  await refused.waitFor();
  const reason = await refused.textContent();
  if (!/fake\.png — .+\(.+\)/.test(reason)) throw new Error("the refused chip shows no server error: " + reason);
  await shot("attachments-1-refused");

  step("removing a chip deletes its attachment");
  const deleted = page.waitForResponse((r) => r.url().endsWith("/chatkit") && (r.request().postData() || "").includes('"attachments.delete"'));
  await refused.getByTestId("remove-attachment").click();
  const deleteReply = await deleted;
  if (deleteReply.status() !== 200) throw new Error("attachments.delete answered " + deleteReply.status());
  await chips.first().waitFor({ state: "detached" });

  step("attach an image with the file picker and a text file by dropping it on the composer");
  await fileInput.setInputFiles({ name: "pixel.png", mimeType: "image/png", buffer: PNG });
  const dropped = await page.evaluateHandle(() => {
    const data = new DataTransfer();
    data.items.add(new File(["some notes\n"], "notes.txt", { type: "text/plain" }));
    return data;
  });
  await page.getByTestId("composer").dispatchEvent("drop", { dataTransfer: dropped });
  await page.locator('[data-testid="pending-attachment"][data-state="ready"]', { hasText: "pixel.png" }).waitFor();
  await page.locator('[data-testid="pending-attachment"][data-state="ready"]', { hasText: "notes.txt" }).waitFor();
  await imageLoaded(page, '[data-testid="pending-attachment-thumbnail"]');
  await shot("attachments-2-chips");

  step("send them and see them in the transcript");
  await send(page, "What is in this picture?");
  await chips.first().waitFor({ state: "detached" });
  await page.locator('[data-testid="assistant_message"]', { hasText: "tok7" }).waitFor();
  const sentImage = '[data-testid="user_message"] [data-testid="message-attachment-image"]';
  await imageLoaded(page, sentImage);
  await page.locator('[data-testid="message-attachment-file"]', { hasText: "notes.txt · text/plain" }).waitFor();
  await shot("attachments-3-sent");

  step("reload, open the thread and see them again");
  await page.reload();
  await openFirstThread(page);
  await page.locator('[data-testid="user_message"]', { hasText: "What is in this picture?" }).waitFor();
  await imageLoaded(page, sentImage);
  const src = await page.locator(sentImage).getAttribute("src");
  if (!src.startsWith(base + "/attachments/")) throw new Error("the image is not the server's preview: " + src);
  await page.locator('[data-testid="message-attachment-file"]', { hasText: "notes.txt · text/plain" }).waitFor();
  await shot("attachments-4-after-reload");
}

const THOUGHTS = ["Thinking about about cats.", "Checking the answer."];

// The texts of the visible thoughts of the first reasoning block.
function visibleThoughts(page) {
  return page.evaluate(() => [...document.querySelectorAll('[data-testid="reasoning"] [data-testid="thought"]')]
    .filter((t) => t.checkVisibility())
    .map((t) => t.textContent));
}

async function expectCollapsed(page) {
  const collapsed = page.locator('[data-testid="reasoning"][data-state="collapsed"]');
  await collapsed.waitFor();
  const summary = await collapsed.getByTestId("reasoning-summary").textContent();
  if (!/^▸ Thought for \d+ s$/.test(summary)) throw new Error("collapsed summary: " + summary);
  const shown = await visibleThoughts(page);
  if (shown.length) throw new Error("a collapsed block shows thoughts: " + JSON.stringify(shown));
  const hidden = await collapsed.getByTestId("thought").count();
  if (hidden !== 2) throw new Error("the collapsed block holds " + hidden + " thoughts");
}

async function reasoning({ page, shot }) {
  step("open");
  await signIn(page, "reasoning-user");

  step("the model picker offers the configured models; no tool menu without tools");
  const picker = page.getByTestId("model-picker");
  await picker.waitFor();
  const labels = await picker.locator("option").allTextContents();
  if (JSON.stringify(labels) !== JSON.stringify(["Default", "Fast", "Deep"])) throw new Error("picker options: " + labels);
  if (await page.getByTestId("tool-menu").isVisible()) throw new Error("a tool menu without tools");
  await page.getByTestId("dictate").waitFor(); // dictation is on by default
  await picker.selectOption({ label: "Deep" });
  await shot("reasoning-1-picker");

  step("send with Deep and watch the thoughts stream");
  const sent = page.waitForRequest((r) => r.url().endsWith("/chatkit") && (r.postData() || "").includes("think about cats"));
  await send(page, "think about cats");
  const options = JSON.parse((await sent).postData()).params.input.inference_options;
  if (JSON.stringify(options) !== JSON.stringify({ model: "deep" })) throw new Error("inference_options: " + JSON.stringify(options));
  await page.locator('[data-testid="reasoning"][data-state="streaming"]').waitFor();
  // Both thoughts show while the block is still streaming (the answer has not started).
  await page.waitForFunction(() => {
    const block = document.querySelector('[data-testid="reasoning"][data-state="streaming"]');
    const thoughts = block ? [...block.querySelectorAll('[data-testid="thought"]')] : [];
    return thoughts.length === 2 && thoughts.every((t) => t.checkVisibility())
      && !document.querySelector('[data-testid="assistant_message"]');
  });
  await shot("reasoning-2-thinking");

  step("done: the block collapses, then the answer");
  await expectCollapsed(page);
  await page.waitForFunction(() => {
    const el = document.querySelector('[data-testid="assistant_message"]');
    return el && el.textContent === "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7";
  });
  const order = await page.evaluate(() => [...document.querySelectorAll("#transcript > .item")].map((i) => i.dataset.testid));
  if (JSON.stringify(order) !== JSON.stringify(["user_message", "reasoning", "assistant_message"])) throw new Error("transcript: " + order);
  await page.waitForFunction(() => !document.getElementById("send").disabled);
  await shot("reasoning-3-collapsed");

  step("reload: the stored reasoning is collapsed, and a click opens it");
  await page.reload();
  await openFirstThread(page);
  await page.locator('[data-testid="assistant_message"]', { hasText: "tok7" }).waitFor();
  await expectCollapsed(page);
  await shot("reasoning-4-after-reload");
  await page.getByTestId("reasoning-summary").click();
  await page.locator('[data-testid="reasoning"][data-state="expanded"]').waitFor();
  const shown = await visibleThoughts(page);
  if (JSON.stringify(shown) !== JSON.stringify(THOUGHTS)) throw new Error("expanded thoughts: " + JSON.stringify(shown));
  await shot("reasoning-5-expanded");
  await page.getByTestId("reasoning-summary").click();
  await expectCollapsed(page);
}

// Waits until the reply has finished streaming and, with `n`, until the `n`th answer starts
// with "Done:" (the mock model's answer to a tool result). An error on the status line fails.
async function replyOver(page, n = 0) {
  const outcome = await page.waitForFunction((n) => {
    const status = document.getElementById("status");
    if (status.style.color) return "error: " + status.textContent;
    const answers = document.querySelectorAll('[data-testid="assistant_message"]');
    const answered = !n || (answers.length >= n && answers[n - 1].textContent.startsWith("Done:"));
    return answered && !document.getElementById("send").disabled && "done";
  }, n);
  const result = await outcome.jsonValue();
  if (result !== "done") throw new Error("the reply: " + result);
}

// Waits until the widget item `itemId` shows the badge "done" and no Complete button.
async function expectCompleted(page, itemId) {
  const outcome = await page.waitForFunction((id) => {
    const status = document.getElementById("status");
    if (status.style.color) return "error: " + status.textContent;
    const card = [...document.querySelectorAll('[data-testid="widget"]')].find((w) => w.dataset.itemId === id);
    if (!card || card.dataset.state === "loading") return false;
    const badges = [...card.querySelectorAll('[data-widget-type="Badge"]')].map((b) => b.textContent.trim().toLowerCase());
    const buttons = [...card.querySelectorAll("button")].map((b) => b.textContent.trim());
    return badges.includes("done") && !buttons.includes("Complete") && "done";
  }, itemId);
  const result = await outcome.jsonValue();
  if (result !== "done") throw new Error("the completed card: " + result);
}

async function widgets({ page, shot }) {
  step("open");
  await signIn(page, "widget-user");

  step("add a task (the model calls add_task) and read its id from the answer");
  await send(page, "add task Water the plants");
  await replyOver(page, 1);
  const added = await page.locator('[data-testid="assistant_message"]').first().textContent();
  const taskId = (/"id"\s*:\s*"([^"]+)"/.exec(added) || [])[1];
  if (!taskId) throw new Error("no task id in the answer: " + added);

  step("show the task's card");
  const before = await page.locator('[data-testid="widget"]').count();
  await send(page, `call show_task {"task_id":"${taskId}"}`);
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="widget"]').length > n, before);
  const itemId = await page.locator('[data-testid="widget"]').nth(before).getAttribute("data-item-id");
  if (!itemId) throw new Error("the widget has no data-item-id");
  const card = page.locator(`[data-testid="widget"][data-item-id="${itemId}"]`);
  const complete = card.getByRole("button", { name: "Complete", exact: true });
  await complete.waitFor();
  // The reply goes on after the tool call: an action is refused while it streams.
  await replyOver(page);
  await shot("widget-card");

  step("Complete runs the action; the card is replaced by the completed one");
  const sent = page.waitForRequest((r) => r.url().endsWith("/chatkit") && (r.postData() || "").includes('"tasks.complete"'));
  await complete.click();
  const request = JSON.parse((await sent).postData());
  if (!["threads.custom_action", "threads.sync_custom_action"].includes(request.type)) throw new Error("the action went as " + request.type);
  const { item_id, action } = request.params;
  if (item_id !== itemId) throw new Error("the action names the item " + item_id + ", not " + itemId);
  if (!JSON.stringify(action.payload).includes(taskId)) throw new Error("the action's payload: " + JSON.stringify(action.payload));
  await expectCompleted(page, itemId);
  const clientActions = await page.evaluate(() => window.__clientActions.length);
  if (clientActions) throw new Error("a server action was handled on the page");
  await shot("widget-completed");

  step("reload: the thread shows the completed card");
  await page.reload();
  await openFirstThread(page);
  await page.locator('[data-testid="user_message"]', { hasText: "call show_task" }).waitFor();
  await expectCompleted(page, itemId);
  await shot("widget-after-reload");
}

// Waits until the step of `type` reads `text` and lists a source titled `source`.
async function stepShown(page, type, text, source) {
  await page.waitForFunction(([type, text, source]) => [...document.querySelectorAll('[data-testid="step"]')]
    .some((s) => s.dataset.type === type && s.firstChild.textContent === text
      && [...s.querySelectorAll('[data-testid="step-source"]')].some((l) => l.textContent === source)), [type, text, source]);
}

async function hosted({ page, shot }) {
  step("open");
  await signIn(page, "hosted-user");

  step("an image: a partial image first, then the final one from this server");
  await send(page, "image a lighthouse");
  await imageLoaded(page, '[data-testid="generated_image"][data-state="partial"] img');
  const partial = await page.locator('[data-testid="generated_image"] img').getAttribute("src");
  if (!partial.startsWith("data:image/png;base64,")) throw new Error("partial image: " + partial.slice(0, 40));
  await shot("hosted-1-partial");
  await imageLoaded(page, '[data-testid="generated_image"][data-state="done"] img');
  const final = await page.locator('[data-testid="generated_image"] img').getAttribute("src");
  if (!final.startsWith(base + "/attachments/atc_")) throw new Error("final image: " + final);
  await page.locator('[data-testid="assistant_message"]', { hasText: "Here is your image." }).waitFor();
  await shot("hosted-2-final");

  step("a web search and a file search: their steps, sources and citations");
  await page.waitForFunction(() => !document.getElementById("send").disabled);
  await send(page, "search tide times");
  await stepShown(page, "web_search", "Searched the web: tide times ✓", "https://example.com/source");
  await page.locator('[data-testid="citation"]', { hasText: "Example source" }).waitFor();
  await page.waitForFunction(() => !document.getElementById("send").disabled);
  await send(page, "files tide tables");
  await stepShown(page, "file", "Searched files: tide tables ✓", "tides.pdf");
  await page.locator('[data-testid="citation"]', { hasText: "tides.pdf" }).waitFor();
  await shot("hosted-3-searches");

  step("reload: the image and the steps are there again");
  await page.waitForFunction(() => !document.getElementById("send").disabled);
  await page.reload();
  await openFirstThread(page);
  await imageLoaded(page, '[data-testid="generated_image"][data-state="done"] img');
  await stepShown(page, "web_search", "Searched the web: tide times ✓", "https://example.com/source");
  await stepShown(page, "file", "Searched files: tide tables ✓", "tides.pdf");
  await shot("hosted-4-after-reload");
}


async function questions({ page, shot }) {
  step("open");
  await signIn(page, "question-user");

  step("the model asks: a form with choices and free text");
  await send(page, "ask me");
  const form = page.locator('[data-testid="structured_input"]');
  await form.getByTestId("questions-send").waitFor();
  await page.waitForFunction(() => !document.getElementById("send").disabled);
  await shot("questions-1-form");

  step("answer: Blue and a note, then Send");
  await form.locator('[data-testid="choice-color"][value="Blue"]').check();
  await form.getByTestId("freeform-notes").fill("extra cheese");
  const sent = page.waitForRequest((r) => r.url().endsWith("/chatkit") && (r.postData() || "").includes("threads.add_structured_input"));
  await form.getByTestId("questions-send").click();
  const request = JSON.parse((await sent).postData());
  const answers = request.params.input.answers;
  if (answers.color.values[0] !== "Blue" || answers.notes.values[0] !== "extra cheese") throw new Error("sent " + JSON.stringify(answers));
  await replyOver(page, 1);
  await form.getByTestId("answer-color").filter({ hasText: "Blue" }).waitFor();
  const reply = await page.locator('[data-testid="assistant_message"]').first().textContent();
  if (!reply.includes("Which color?: Blue")) throw new Error("the reply: " + reply);
  await shot("questions-2-answered");

  step("reload: the answered questions and the reply are there");
  await page.reload();
  await openFirstThread(page);
  await page.locator('[data-testid="structured_input"]').getByTestId("answer-notes").filter({ hasText: "extra cheese" }).waitFor();
  await page.locator('[data-testid="assistant_message"]', { hasText: "Which color?: Blue" }).waitFor();
  await shot("questions-3-after-reload");
}

// With `stream.on_disconnect = "finish"`: a reload in the middle of an answer loses nothing.
async function reload({ page, shot }) {
  step("open");
  await signIn(page, "reload-user");

  step("a slow answer streams");
  await send(page, "slow 40");
  await page.waitForFunction(() => {
    const el = document.querySelector('[data-testid="assistant_message"]');
    return el && el.textContent.includes("tok2") && !el.textContent.includes("tok39");
  });
  await shot("reload-1-streaming");

  step("reload mid-answer; the turn runs on without the page");
  await page.reload();
  await openFirstThread(page);
  await page.locator('[data-testid="user_message"]', { hasText: "slow 40" }).waitFor();
  const partial = await page.locator('[data-testid="assistant_message"]').count();
  await shot("reload-2-reopened");

  step("the whole answer is there once the turn ends");
  for (let tries = 0; ; tries++) {
    const whole = page.locator('[data-testid="assistant_message"]', { hasText: "tok39" });
    if (await whole.count()) break;
    if (tries >= 100) throw new Error("the answer never completed after the reload");
    await page.waitForTimeout(100);
    await openFirstThread(page);
  }
  const text = await page.locator('[data-testid="assistant_message"]').first().textContent();
  if (!text.startsWith("tok0 tok1") || !text.endsWith("tok39")) throw new Error("the answer: " + text);
  const answers = await page.locator('[data-testid="assistant_message"]').count();
  if (answers !== 1) throw new Error(answers + " answers shown (the reopened page had " + partial + ")");
  await shot("reload-3-whole-answer");

  step("the thread goes on");
  await send(page, "thanks");
  await page.waitForFunction(() => {
    const answers = document.querySelectorAll('[data-testid="assistant_message"]');
    return answers.length === 2 && answers[1].textContent === "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"
      && !document.getElementById("send").disabled;
  });
  await shot("reload-4-next-turn");
}

const scenarios = { basics, attachments, reasoning, widgets, hosted, questions, reload };
if (!scenarios[scenarioName]) throw new Error("unknown scenario " + scenarioName);

const browser = await chromium.launch({
  executablePath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  page.on("pageerror", (e) => { console.error("page error: " + e.message); process.exitCode = 1; });
  // A CSP refusal (e.g. of an image source) is only a console message.
  page.on("console", (m) => { if (m.type() === "error") console.error("console error: " + m.text()); });
  const shot = (name) => page.screenshot({ path: join(artifacts, name + ".png") });
  await scenarios[scenarioName]({ browser, page, shot });
  console.log("playground " + scenarioName + ": all steps passed");
} finally {
  await browser.close();
}
