// Drives the playground page in headless Chromium against a real chatkit-rs server:
// get a development token, send a message and watch the reply stream in, reload and see the
// history, rename and delete the thread. Screenshots go to $ARTIFACTS.
//
// usage: node playground.mjs http://127.0.0.1:PORT
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const base = process.argv[2];
const artifacts = process.env.ARTIFACTS || "browser-artifacts";
mkdirSync(artifacts, { recursive: true });
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

const browser = await chromium.launch({
  executablePath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const step = (name) => console.log("step: " + name);
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  page.on("pageerror", (e) => { console.error("page error: " + e.message); process.exitCode = 1; });
  const shot = (name) => page.screenshot({ path: join(artifacts, name + ".png") });

  step("open");
  await page.goto(base + "/");
  await page.getByTestId("dev-sub").fill("browser-user");
  await page.getByTestId("dev-token").click();
  await page.waitForFunction(() => document.getElementById("token").value.split(".").length === 3);

  step("send a message and watch it stream");
  await page.getByTestId("message").fill("Hello from the browser");
  await page.getByTestId("send").click();
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
  const thread = page.locator('[data-testid="thread"]').first();
  await thread.waitFor();
  await thread.click();
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
  console.log("playground: all steps passed");
} finally {
  await browser.close();
}
