// Who is signed in, and the collective / project pickers the pages share.

import { api } from "./api.js";
import { h } from "./ui.js";

// What the signed-in user is and may pick from; shared by the pages.
export const session = {
  who: null,
  collectives: null, // [{collective_id, name}]
  projects: null, // [{project_id, name}]
  collectiveId: sessionStorage.getItem("baotuan.collective"),
  projectId: sessionStorage.getItem("baotuan.project"),
  can(...roles) {
    return this.who && (this.who.role === "admin" || roles.includes(this.who.role));
  },
};

// --- pickers shared by the pages ----------------------------------------------------------

export async function collectives() {
  if (session.collectives === null) {
    let known = [];
    try {
      known = (await api("ledger", "/v1/collectives")).items || [];
    } catch {
      known = [];
    }
    const scope = session.who.scope;
    const inScope = ["admin", "auditor"].includes(session.who.role) ? known : known.filter((c) => scope.includes(c.collective_id));
    for (const id of scope) if (!inScope.some((c) => c.collective_id === id)) inScope.push({ collective_id: id, name: id });
    session.collectives = inScope;
  }
  return session.collectives;
}

export async function projects() {
  if (session.projects === null) {
    let known = [];
    try {
      known = (await api("ledger", "/v1/projects")).items || [];
    } catch {
      known = [];
    }
    const scope = session.who.scope;
    const inScope = ["admin", "auditor"].includes(session.who.role) ? known : known.filter((p) => scope.includes(p.project_id));
    for (const id of scope) if (!inScope.some((p) => p.project_id === id)) inScope.push({ project_id: id, name: id });
    session.projects = inScope;
  }
  return session.projects;
}

// A <select> of the given items; remembers the choice for the other pages.
export function picker(items, idKey, current, onChange, testid) {
  const select = h("select", { "data-testid": testid, name: idKey },
    items.map((item) => h("option", { value: item[idKey], selected: item[idKey] === current },
      item.name && item.name !== item[idKey] ? `${item.name} (${item[idKey]})` : item[idKey])));
  select.addEventListener("change", () => onChange(select.value));
  return select;
}

export async function collectivePicker(onChange) {
  const items = await collectives();
  if (!items.some((c) => c.collective_id === session.collectiveId)) session.collectiveId = items[0]?.collective_id || null;
  return picker(items, "collective_id", session.collectiveId, (id) => {
    session.collectiveId = id;
    sessionStorage.setItem("baotuan.collective", id);
    onChange(id);
  }, "collective-picker");
}

export async function projectPicker(onChange) {
  const items = await projects();
  if (!items.some((p) => p.project_id === session.projectId)) session.projectId = items[0]?.project_id || null;
  return picker(items, "project_id", session.projectId, (id) => {
    session.projectId = id;
    sessionStorage.setItem("baotuan.project", id);
    onChange(id);
  }, "project-picker");
}

let chart = null;

// The statutory chart (GET /v1/accounts): [{code, name, class, normal_side}].
export async function accounts() {
  if (chart === null) chart = (await api("ledger", "/v1/accounts")).items || [];
  return chart;
}

// "141/binhai-park" -> "长期投资 / binhai-park"; unknown codes stay as they are.
export function accountName(code) {
  if (!chart || !code) return "";
  const [base, segment] = String(code).split("/", 2);
  const account = chart.find((a) => a.code === base);
  if (!account) return "";
  return segment ? `${account.name} / ${segment}` : account.name;
}

let names = null;

// Display names of collectives and other investors by id (the registry is readable by every role).
export async function directory() {
  if (names === null) {
    const found = {};
    for (const [path, key] of [["/v1/collectives", "collective_id"], ["/v1/investors", "investor_id"]]) {
      try {
        for (const item of (await api("ledger", path)).items || []) found[item[key]] = item.name;
      } catch {
        // names are a convenience: ids are shown without them
      }
    }
    names = found;
  }
  return names;
}
