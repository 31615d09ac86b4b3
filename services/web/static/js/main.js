// The page: sign in with a token, then the tabs the role may use (DESIGN §8).

import { api, getToken, setToken, whoami } from "./api.js";
import { applyStaticText, getLang, setLang, t } from "./i18n.js";
import { describeError, field, h, replace } from "./ui.js";
import { booksPage, dividendsPage, statementPage } from "./pages/books.js";
import { entryPage } from "./pages/entry.js";
import { rentalsPage } from "./pages/rentals.js";
import { boardPage } from "./pages/board.js";
import { incomePage } from "./pages/income.js";
import { session } from "./session.js";

// Which tabs each role sees; a service still refuses anything outside the token's scope.
const PAGES = {
  books: { render: booksPage, roles: ["accountant", "auditor", "admin"] },
  entry: { render: entryPage, roles: ["accountant", "admin"] },
  dividends: { render: dividendsPage, roles: ["accountant", "auditor", "admin"] },
  statement: { render: statementPage, roles: ["accountant", "auditor", "admin"] },
  rentals: { render: rentalsPage, roles: ["operator", "auditor", "admin"] },
  board: { render: boardPage, roles: ["board", "auditor", "admin"] },
  income: { render: incomePage, roles: ["accountant", "operator", "board", "auditor", "admin"] },
};
const HOME = { accountant: "books", operator: "rentals", board: "board", auditor: "income", admin: "income" };

const view = () => document.getElementById("view");

async function signIn(token) {
  setToken(token);
  session.who = await whoami();
  session.collectives = null;
  session.projects = null;
}

function signOut() {
  setToken(null);
  session.who = null;
  go("signin");
}

function signInPage(root, error) {
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "off", required: true,
    "data-field": "token", placeholder: "bt_…" });
  const message = h("div", { class: "form-error" }, error ? h("p", { class: "field-error", role: "alert" }, error) : null);
  const form = h("form", { class: "card signin", id: "signin-form" },
    h("h1", {}, t("signin.title")),
    h("p", { class: "muted" }, t("signin.help")),
    field(t("signin.token"), input),
    message,
    h("button", { type: "submit", class: "primary" }, t("signin.submit")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await signIn(input.value.trim());
      go(HOME[session.who.role]);
    } catch (exc) {
      setToken(null);
      replace(message, h("p", { class: "field-error", role: "alert", "data-error-for": "token" },
        exc.status === 401 ? t("signin.bad") : describeError(exc)));
      input.setAttribute("aria-invalid", "true");
    }
  });
  replace(root, form);
  input.focus();
}

function renderNav(current) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  const signout = document.getElementById("signout");
  if (!session.who) {
    replace(nav);
    replace(who);
    signout.hidden = true;
    return;
  }
  const links = Object.entries(PAGES)
    .filter(([, page]) => page.roles.includes(session.who.role))
    .map(([name]) => h("a", { href: `#/${name}`, class: name === current ? "active" : null,
      "aria-current": name === current ? "page" : null, "data-testid": `nav-${name}` }, t(`nav.${name}`)));
  replace(nav, links);
  replace(who, h("span", { class: "role", "data-testid": "role" }, t(`role.${session.who.role}`)), " ", session.who.name);
  signout.hidden = false;
}

// Show a page: through hashchange when the hash changes, directly when it does not.
function go(name) {
  if (location.hash === `#/${name}`) route();
  else location.hash = `#/${name}`;
}

// --- routing ------------------------------------------------------------------------------

let routing = 0;

export async function route() {
  const mine = ++routing;
  const root = view();
  const name = (location.hash.replace(/^#\/?/, "").split("?")[0]) || "";
  if (!session.who && getToken()) {
    try {
      await signIn(getToken());
    } catch (exc) {
      setToken(null);
      renderNav(null);
      signInPage(root, exc.status === 401 ? t("signin.expired") : describeError(exc));
      return;
    }
  }
  if (!session.who) {
    renderNav(null);
    signInPage(root);
    return;
  }
  const page = PAGES[name];
  if (!page || !page.roles.includes(session.who.role)) {
    location.replace(`#/${HOME[session.who.role]}`);
    return;
  }
  renderNav(name);
  const container = h("div", { class: "page", "data-page": name });
  replace(root, container);
  try {
    await page.render(container);
  } catch (exc) {
    if (mine === routing) container.append(h("p", { class: "notice error", role: "alert" }, describeError(exc)));
  }
}

function init() {
  const lang = document.getElementById("lang");
  const refreshLang = () => {
    document.documentElement.lang = getLang() === "zh" ? "zh-CN" : "en";
    lang.textContent = getLang() === "zh" ? "English" : "中文";
    applyStaticText();
  };
  lang.addEventListener("click", () => {
    setLang(getLang() === "zh" ? "en" : "zh");
    refreshLang();
    route();
  });
  document.getElementById("signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  refreshLang();
  route();
}

init();
