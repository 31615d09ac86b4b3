// Operator: rent roll, occupancy and arrears by age of a project; record a rent payment.

import { api, Submission } from "../api.js";
import { t } from "../i18n.js";
import { projectPicker, session } from "../session.js";
import { failure, field, h, latest, money, onSubmit, replace, section, table, today } from "../ui.js";

function tenantName(tenant) {
  if (!tenant) return "";
  return typeof tenant === "string" ? tenant : tenant.name || "";
}

export async function rentalsPage(root) {
  const on = h("input", { type: "date", value: today(), name: "on", "data-testid": "rentals-on" });
  const rollSlot = h("div", { "data-testid": "rent-roll" });
  const occupancySlot = h("div", { "data-testid": "occupancy" });
  const arrearsSlot = h("div", { "data-testid": "arrears" });
  const paymentSlot = h("div", {});
  const turns = { roll: latest(), occupancy: latest(), arrears: latest(), leases: latest() };
  // The payment form depends on the project only: a change of date must not rebuild it
  // (and wipe what the operator is typing), so only a change of project does.
  const picker = await projectPicker(() => load({ withForm: true }));
  root.append(
    h("h1", {}, t("nav.rentals")),
    h("div", { class: "toolbar" }, field(t("project"), picker), field(t("rentals.on"), on)),
    h("div", { class: "grid-2" }, section(t("rentals.occupancy"), occupancySlot), section(t("rentals.rent_roll"), rollSlot)),
    section(t("rentals.arrears"), arrearsSlot),
    session.can("operator") ? section(t("rentals.record_payment"), paymentSlot) : null,
  );
  on.addEventListener("change", () => load());

  const path = (suffix) => `/v1/projects/${encodeURIComponent(session.projectId)}/${suffix}`;

  async function load({ withForm = false } = {}) {
    if (!session.projectId) {
      replace(rollSlot, h("p", { class: "muted" }, t("rentals.no_project")));
      return;
    }
    const form = withForm && session.can("operator") ? loadPaymentForm() : null;
    await Promise.all([loadRoll(), loadOccupancy(), loadArrears(), form]);
  }

  async function loadRoll() {
    const current = turns.roll();
    try {
      const roll = await api("rentals", path("rent-roll"), { query: { on: on.value } });
      if (!current()) return;
      const rows = roll.items || [];
      replace(rollSlot, table([
        { key: "building", label: t("rentals.building"), render: (r) => r.building_name || r.building_id },
        { key: "status", label: t("status"), render: (r) => h("span", { class: `tag ${r.status}` }, t(`occ.${r.status}`)) },
        { key: "tenant", label: t("rentals.tenant"), render: (r) => tenantName(r.tenant) },
        { key: "lease_id", label: t("rentals.lease") },
        { key: "monthly_rent", label: t("rentals.monthly_rent"), money: true },
      ], rows, { testid: "rent-roll-table", footer: roll.total_monthly_rent !== undefined
        ? { building: t("total"), monthly_rent: roll.total_monthly_rent } : undefined }));
    } catch (exc) {
      if (current()) replace(rollSlot, failure(exc));
    }
  }

  async function loadOccupancy() {
    const current = turns.occupancy();
    try {
      const occ = await api("rentals", path("occupancy"), { query: { on: on.value } });
      if (!current()) return;
      const buildings = occ.buildings || [];
      const leased = buildings.filter((b) => b.status === "leased").length;
      replace(occupancySlot, h("dl", { class: "stats", "data-testid": "occupancy-stats" },
        h("dt", {}, t("rentals.rate")), h("dd", { class: "big", "data-testid": "occupancy-rate" }, percent(occ.rate)),
        h("dt", {}, t("rentals.buildings")), h("dd", {}, t("rentals.leased_of", { leased, total: buildings.length })),
        h("dt", {}, t("rentals.total_area")), h("dd", {}, `${money(occ.total_area_m2)} m²`),
        h("dt", {}, t("rentals.leased_area")), h("dd", {}, `${money(occ.leased_area_m2)} m²`),
        h("dt", {}, t("rentals.vacant_area")), h("dd", {}, `${money(occ.vacant_area_m2)} m²`)));
    } catch (exc) {
      if (current()) replace(occupancySlot, failure(exc));
    }
  }

  async function loadArrears() {
    const current = turns.arrears();
    try {
      const arr = await api("rentals", path("arrears"), { query: { as_of: on.value } });
      if (!current()) return;
      const buckets = Object.keys(arr.buckets || {});
      const rows = (arr.items || []).map((item) => ({ ...item, ...Object.fromEntries(buckets.map((b) => [`b:${b}`, item.buckets[b]])) }));
      const footer = { who: t("total"), total: arr.total, ...Object.fromEntries(buckets.map((b) => [`b:${b}`, arr.buckets[b]])) };
      replace(arrearsSlot, table([
        { key: "who", label: t("rentals.tenant"), render: (r) => [r.tenant || "", " ", h("small", { class: "muted" }, r.lease_id)] },
        ...buckets.map((b) => ({ key: `b:${b}`, label: t(`age.${b}`, {}, b), money: true })),
        { key: "total", label: t("total"), money: true },
      ], rows, { testid: "arrears-table", footer, empty: t("rentals.no_arrears") }));
    } catch (exc) {
      if (current()) replace(arrearsSlot, failure(exc));
    }
  }

  async function loadPaymentForm() {
    const current = turns.leases();
    let leases = [];
    try {
      leases = (await api("rentals", path("leases"))).items || [];
    } catch (exc) {
      if (current()) replace(paymentSlot, failure(exc));
      return;
    }
    if (!current()) return;
    const lease = h("select", { name: "lease_id", "data-field": "lease_id", "data-testid": "payment-lease" },
      leases.filter((l) => l.status !== "terminated").map((l) => h("option", { value: l.lease_id },
        `${l.lease_id} · ${tenantName(l.tenant)}${l.monthly_rent ? ` · ${money(l.monthly_rent)}/${t("month")}` : ""}`)));
    const amount = h("input", { type: "text", inputmode: "decimal", name: "amount", "data-field": "amount", class: "amount",
      placeholder: "0.00", required: true, "data-testid": "payment-amount" });
    const receivedOn = h("input", { type: "date", name: "received_on", value: on.value || today(), "data-field": "received_on",
      "data-testid": "payment-date" });
    const submit = h("button", { type: "submit", class: "primary", "data-testid": "payment-submit" }, t("rentals.record"));
    const submission = new Submission();
    const form = h("form", { class: "inline-form", "data-testid": "payment-form", novalidate: true },
      field(t("rentals.lease"), lease), field(t("amount"), amount), field(t("rentals.received_on"), receivedOn), submit,
      h("div", { class: "form-error" }));
    onSubmit(form, submit, async () => {
      const paid = await api("rentals", `/v1/leases/${encodeURIComponent(lease.value)}/payments`,
        { method: "POST", body: { amount: amount.value.trim(), received_on: receivedOn.value }, submission });
      amount.value = "";
      await Promise.all([loadRoll(), loadArrears()]);
      form.querySelector(".form-error").append(h("p", { class: "notice ok", role: "status", "data-testid": "payment-recorded" },
        `${t("rentals.recorded")} ${paid.payment?.payment_id || ""}`));
    }, { fallbackField: "lease_id" });
    replace(paymentSlot, leases.length ? form : h("p", { class: "muted" }, t("rentals.no_leases")));
  }

  await load({ withForm: true });
}

// "0.6563" -> "65.63%" (string arithmetic: the rate is a decimal string).
function percent(rate) {
  const match = /^(\d+)\.(\d{1,4})$/.exec(String(rate ?? ""));
  if (!match) return rate ?? "—";
  const digits = (match[1] + match[2].padEnd(4, "0")).replace(/^0+(?=\d{3})/, "");
  return `${digits.slice(0, -2)}.${digits.slice(-2)}%`;
}
