// How the browser test drives each front-end: our own page, or the original 2011 page
// (application.js from pusher/backbone-todo-app), which have different markup and events.

/** Reads the list as [{text, done}] in page order. */
function readItems(page) {
  return page.$$eval('#todo-list li', (lis) =>
    lis.map((li) => ({
      text: (li.querySelector('.todo-content')?.textContent || '').trim(),
      done: !!li.querySelector('.check')?.checked,
    })),
  );
}

function itemByText(page, text) {
  return page.locator('#todo-list li').filter({
    has: page.locator('.todo-content', { hasText: new RegExp(`^\\s*${escapeRegExp(text)}\\s*$`) }),
  });
}

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function remaining(page) {
  const text = await page.locator('#todo-stats .number').first().textContent();
  return Number.parseInt((text || '').trim(), 10);
}

/** Our front-end (frontend/src). */
export const ours = {
  name: 'ours',
  readItems,
  remaining,
  shareUrl: (page) => page.inputValue('#share-url'),
  async add(page, text) {
    await page.fill('#new-todo', text);
    await page.press('#new-todo', 'Enter');
  },
  async toggle(page, text) {
    await itemByText(page, text).locator('.check').click();
  },
  async edit(page, from, to) {
    const li = itemByText(page, from);
    await li.locator('.todo-edit').click();
    await li.locator('.todo-input').fill(to);
    await li.locator('.todo-input').press('Enter');
  },
  async remove(page, text) {
    await itemByText(page, text).locator('.todo-destroy').click();
  },
};

/** The original 2011 front-end: keypress handlers, icon spans, a blur that saves again. */
export const original = {
  name: 'original',
  readItems,
  remaining,
  shareUrl: (page) => page.inputValue('.title input'),
  async add(page, text) {
    await page.fill('#new-todo', text);
    await page.press('#new-todo', 'Enter');
  },
  async toggle(page, text) {
    await itemByText(page, text).locator('.check').click({ force: true });
  },
  async edit(page, from, to) {
    const li = itemByText(page, from);
    // The icons only show on hover; a real user hovers first.
    await li.hover();
    await li.locator('span.todo-edit').click();
    await li.locator('.todo-input').fill(to);
    await li.locator('.todo-input').press('Enter');
  },
  async remove(page, text) {
    const li = itemByText(page, text);
    await li.hover();
    await li.locator('span.todo-destroy').click();
  },
};
