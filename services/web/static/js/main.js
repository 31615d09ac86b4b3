// The page: sign in with an account's name and password, then the tabs the role may use (DESIGN §8).

import { onSession, signIn, signOut, whoami } from "./api.js";
import { applyStaticText, getLang, setLang, t } from "./i18n.js";
import { busy, clearErrors, describeError, field, h, replace, showError } from "./ui.js";
import { booksPage, dividendsPage, statementPage } from "./pages/books.js";
import { entryPage } from "./pages/entry.js";
import { rentalsPage } from "./pages/rentals.js";
import { boardPage } from "./pages/board.js";
import { incomePage } from "./pages/income.js";
import { membersPage } from "./pages/members.js";
import { accountPage, passwordForm } from "./pages/account.js";
import { usersPage } from "./pages/users.js";
import { session } from "./session.js";

const EVERYONE = ["accountant", "operator", "board", "auditor", "admin"];
// Which tabs each role sees; a service still refuses anything outside the account's scope.
const PAGES = {
  books: { render: booksPage, roles: ["accountant", "auditor", "admin"] },
  entry: { render: entryPage, roles: ["accountant", "admin"] },
  dividends: { render: dividendsPage, roles: ["accountant", "auditor", "admin"] },
  statement: { render: statementPage, roles: ["accountant", "auditor", "admin"] },
  rentals: { render: rentalsPage, roles: ["operator", "auditor", "admin"] },
  board: { render: boardPage, roles: ["board", "auditor", "admin"] },
  income: { render: incomePage, roles: EVERYONE },
  members: { render: membersPage, roles: ["accountant", "board", "auditor", "admin"] },
  users: { render: usersPage, roles: ["admin"] },
  account: { render: accountPage, roles: EVERYONE, hidden: true }, // reached from the name in the top bar
};
const HOME = { accountant: "books", operator: "rentals", board: "board", auditor: "income", admin: "users" };

const view = () => document.getElementById("view");

// Whether the page has asked the web app who is signed in (once, at load).
let asked = false;
// Why the sign-in page is shown (a session that ended, idle, …).
let signInNote = null;

function signedIn(who) {
  session.who = who;
  session.collectives = null;
  session.projects = null;
}

async function leave() {
  try {
    await signOut();
  } catch {
    // the cookie is cleared by the web app all the same
  }
  signedIn(null);
  signInNote = null;
  go("signin");
}

function signInPage(root, note) {
  const name = h("input", { type: "text", id: "name", name: "username", autocomplete: "username", required: true,
    "data-field": "name", autocapitalize: "none", spellcheck: "false" });
  const password = h("input", { type: "password", id: "password", name: "password", autocomplete: "current-password",
    required: true, "data-field": "password" });
  const submit = h("button", { type: "submit", class: "primary" }, t("signin.submit"));
  const message = h("div", { class: "form-error" }, note ? h("p", { class: "notice error", role: "alert" }, note) : null);
  const form = h("form", { class: "card signin", id: "signin-form", "data-testid": "signin-form", novalidate: true },
    h("h1", {}, t("signin.title")),
    h("p", { class: "muted" }, t("signin.help")),
    field(t("signin.name"), name),
    field(t("signin.password"), password),
    message,
    submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    replace(message);
    busy(submit, true);
    try {
      signedIn(await signIn(name.value.trim().toLowerCase(), password.value));
      signInNote = null;
      go(HOME[session.who.role]);
    } catch (exc) {
      password.value = "";
      let text = describeError(exc);
      let where = "password";
      if (exc.status === 401 && exc.code === "account_disabled") [text, where] = [t("signin.disabled"), "name"];
      else if (exc.status === 401) text = t("signin.bad");
      else if (exc.status === 429) [text, where] = [t("signin.locked", { s: exc.retryAfter || 60 }), "name"];
      showError(form, { status: 400, message: text, field: where }, where);
    } finally {
      busy(submit, false);
    }
  });
  replace(root, form);
  name.focus();
}

// A person whose password must be changed (first sign-in, or reset by an admin) sees only this.
function passwordPage(root) {
  const form = passwordForm(async () => {
    signedIn(await whoami());
    go(HOME[session.who.role]);
  }, { forced: true });
  replace(root, h("div", { class: "signin" }, form));
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
    .filter(([, page]) => page.roles.includes(session.who.role) && !page.hidden && !session.who.must_change_password)
    .map(([name]) => h("a", { href: `#/${name}`, class: name === current ? "active" : null,
      "aria-current": name === current ? "page" : null, "data-testid": `nav-${name}` }, t(`nav.${name}`)));
  replace(nav, links);
  replace(who, h("span", { class: "role", "data-testid": "role" }, t(`role.${session.who.role}`)), " ",
    h("a", { href: "#/account", "data-testid": "nav-account", title: t("nav.account"),
      class: current === "account" ? "active" : null }, session.who.display_name || session.who.name));
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
  if (!asked) {
    asked = true;
    try {
      signedIn(await whoami());
    } catch (exc) {
      renderNav(null);
      signInPage(root, describeError(exc));
      return;
    }
    if (mine !== routing) return;
  }
  if (!session.who) {
    renderNav(null);
    signInPage(root, signInNote);
    return;
  }
  if (session.who.must_change_password) {
    renderNav(null);
    passwordPage(root);
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
    if (mine === routing && session.who) container.append(h("p", { class: "notice error", role: "alert" }, describeError(exc)));
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
  document.getElementById("signout").addEventListener("click", leave);
  // A session that ended (signed out elsewhere, disabled, idle, expired): back to the sign-in page.
  onSession({
    signedOut: (exc) => {
      if (!session.who) return;
      signedIn(null);
      signInNote = exc.code === "session_idle" ? t("signin.idle") : t("signin.expired");
      route();
    },
    passwordChange: () => {
      if (session.who && !session.who.must_change_password) {
        session.who = { ...session.who, must_change_password: true };
        route();
      }
    },
  });
  window.addEventListener("hashchange", route);
  refreshLang();
  route();
}

init();
