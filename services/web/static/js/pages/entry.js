// Accountant: post a journal entry. Accounts are picked from the statutory chart (code and
// name; sub-accounts "CODE/segment" may be typed); debits must equal credits before the
// form can be sent; what the ledger refuses is shown next to the field it names.

import { api, Submission } from "../api.js";
import { t } from "../i18n.js";
import { accountName, accounts, collectivePicker, session } from "../session.js";
import { busy, clearErrors, field, fenToWire, h, money, parseFen, replace, showError, today } from "../ui.js";

export async function entryPage(root) {
  const chart = await accounts();
  const picker = await collectivePicker(() => {});
  const datalist = h("datalist", { id: "chart" }, chart.map((a) => h("option", { value: a.code }, `${a.code} ${a.name}`)));
  const date = h("input", { type: "date", name: "date", value: today(), required: true, "data-field": "date", "data-testid": "entry-date" });
  const memo = h("input", { type: "text", name: "memo", maxlength: 200, "data-field": "memo", "data-testid": "entry-memo", class: "wide" });
  const attachments = h("input", { type: "number", name: "attachments", min: 0, max: 999, step: 1, "data-field": "attachments", "data-testid": "entry-attachments", class: "year" });
  const body = h("tbody", {});
  const totals = { debit: h("td", { class: "num", "data-testid": "total-debit" }), credit: h("td", { class: "num", "data-testid": "total-credit" }) };
  const status = h("p", { class: "badge", "data-testid": "balance-status", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "entry-submit" }, t("entry.submit"));
  const result = h("div", { class: "form-error", "data-testid": "entry-result" });
  const submission = new Submission();

  const linesTable = h("table", { class: "data lines", "data-field": "lines" },
    h("thead", {}, h("tr", {},
      h("th", {}, t("entry.account")), h("th", {}, t("account.name")),
      h("th", { class: "num" }, t("debit")), h("th", { class: "num" }, t("credit")), h("th", {}))),
    body,
    h("tfoot", {}, h("tr", {}, h("td", { colspan: 2 }, t("total")), totals.debit, totals.credit, h("td", {}))));

  const form = h("form", { class: "card entry-form", "data-testid": "entry-form", novalidate: true },
    h("div", { class: "toolbar" }, field(t("collective"), picker), field(t("date"), date), field(t("memo"), memo), field(t("entry.attachments"), attachments)),
    datalist,
    linesTable,
    h("div", { class: "toolbar" },
      h("button", { type: "button", "data-testid": "add-line", onclick: () => { addLine(); update(); } }, t("entry.add_line")),
      status),
    result,
    h("div", { class: "actions" }, submit));
  root.append(h("h1", {}, t("nav.entry")), h("p", { class: "muted" }, t("entry.help")), form);

  function addLine(values = {}) {
    const account = h("input", { type: "text", list: "chart", name: "account", class: "account", autocomplete: "off",
      placeholder: "102", value: values.account || "", "data-testid": "line-account" });
    const name = h("span", { class: "muted account-name" });
    const debit = h("input", { type: "text", inputmode: "decimal", name: "debit", class: "amount", placeholder: "0.00",
      value: values.debit || "", "data-testid": "line-debit" });
    const credit = h("input", { type: "text", inputmode: "decimal", name: "credit", class: "amount", placeholder: "0.00",
      value: values.credit || "", "data-testid": "line-credit" });
    const remove = h("button", { type: "button", class: "small", title: t("entry.remove_line"), "aria-label": t("entry.remove_line"),
      onclick: () => { row.remove(); renumber(); update(); } }, "×");
    const row = h("tr", { class: "line" }, h("td", {}, account), h("td", {}, name), h("td", { class: "num" }, debit),
      h("td", { class: "num" }, credit), h("td", {}, remove));
    for (const input of [account, debit, credit]) input.addEventListener("input", update);
    // A line is either a debit or a credit: typing one clears the other.
    debit.addEventListener("input", () => { if (debit.value) credit.value = ""; });
    credit.addEventListener("input", () => { if (credit.value) debit.value = ""; });
    body.append(row);
    renumber();
  }

  // data-field paths follow the request body, so a server error lands on its input.
  function renumber() {
    [...body.rows].forEach((row, i) => {
      row.dataset.field = `lines.${i}`;
      row.querySelector(".account").dataset.field = `lines.${i}.account`;
      row.querySelector("[name=debit]").dataset.field = `lines.${i}.debit`;
      row.querySelector("[name=credit]").dataset.field = `lines.${i}.credit`;
    });
  }

  // Reads the lines; returns {lines, debit, credit, problems} with amounts in integer fen.
  function read() {
    let debit = 0;
    let credit = 0;
    const lines = [];
    const problems = [];
    [...body.rows].forEach((row, i) => {
      const account = row.querySelector(".account").value.trim();
      const d = row.querySelector("[name=debit]").value.trim();
      const c = row.querySelector("[name=credit]").value.trim();
      row.querySelector(".account-name").textContent = accountName(account.split(" ")[0]);
      if (!account && !d && !c) return;
      const side = d ? "debit" : "credit";
      const fen = parseFen(d || c);
      if (!account) problems.push({ field: `lines.${i}.account`, message: t("entry.need_account") });
      if (!d && !c) problems.push({ field: `lines.${i}.debit`, message: t("entry.need_amount") });
      else if (fen === null || fen <= 0) problems.push({ field: `lines.${i}.${side}`, message: t("entry.bad_amount") });
      else if (side === "debit") debit += fen;
      else credit += fen;
      lines.push({ account: account.split(" ")[0], [side]: fen === null ? (d || c) : fenToWire(fen) });
    });
    return { lines, debit, credit, problems };
  }

  function update() {
    const { lines, debit, credit } = read();
    totals.debit.textContent = money(fenToWire(debit));
    totals.credit.textContent = money(fenToWire(credit));
    const balanced = debit === credit && debit > 0 && lines.length >= 2;
    status.className = `badge ${balanced ? "ok" : "bad"}`;
    if (balanced) status.textContent = t("entry.balanced");
    else if (lines.length < 2 || debit === 0) status.textContent = t("entry.need_lines");
    else status.textContent = `${t("entry.unbalanced")} ${money(fenToWire(Math.abs(debit - credit)))}`;
    submit.disabled = !balanced;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const { lines, problems } = read();
    if (problems.length) {
      for (const p of problems) showError(form, { status: 422, message: p.message, field: p.field });
      return;
    }
    busy(submit, true);
    try {
      const posted = await api("ledger", `/v1/collectives/${encodeURIComponent(session.collectiveId)}/entries`,
        { method: "POST", body: { date: date.value, ...(memo.value ? { memo: memo.value } : {}),
          ...(attachments.value !== "" ? { attachments: Number(attachments.value) } : {}), lines }, submission });
      replace(result, h("p", { class: "notice ok", role: "status", "data-testid": "entry-posted" },
        `${t("entry.posted")} ${posted.voucher_no || posted.entry_id || ""}`, " ", h("a", { href: "#/books" }, t("entry.see_books"))));
      body.replaceChildren();
      addLine();
      addLine();
      memo.value = "";
      attachments.value = "";
    } catch (exc) {
      showError(form, exc);
    } finally {
      busy(submit, false);
      update();
    }
  });

  addLine();
  addLine();
  update();
}
