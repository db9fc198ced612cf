// The shop window: #/?q=<search>&category=<slug>&sort=<order>, with categories beside the
// products, stock from inventory for the whole page in one question, and "Load more".

import { addToCart } from "../cart.js";
import { announce, h, hidden, spinner, toast } from "../dom.js";
import { money, plural } from "../format.js";
import { query as qs, request } from "../http.js";
import { go, setTitle } from "../router.js";
import { productPicture, stockLine } from "./showcase.js";

const PAGE_SIZE = 24;
const SORTS = [
  ["name", "Name"],
  ["price", "Price: low to high"],
  ["-price", "Price: high to low"],
  ["-created_at", "Newest"],
];

let categoriesCache = null; // {at, items}: categories change rarely

async function categories(signal) {
  if (!categoriesCache || Date.now() - categoriesCache.at > 60_000) {
    const { items } = await request("/api/v1/categories", { signal });
    categoriesCache = { at: Date.now(), items };
  }
  return categoriesCache.items;
}

export async function render({ view, query, signal }) {
  const q = (query.get("q") || "").trim();
  const category = query.get("category") || "";
  const sort = SORTS.some(([value]) => value === query.get("sort")) ? query.get("sort") : "name";
  view.append(spinner("Loading products…"));

  const [known, page] = await Promise.all([
    categories(signal),
    request(`/api/v1/products${qs({ limit: PAGE_SIZE, q, category, sort })}`, { signal }),
  ]);
  const current = known.find((c) => c.slug === category);
  const title = q ? `Results for “${q}”` : current ? current.name : "All products";
  setTitle(title);

  const grid = h("ul", { class: "grid", "aria-label": "Products" });
  const count = h("p", { class: "count", "data-testid": "result-count" });
  const more = h(
    "button",
    { type: "button", class: "button button--secondary", hidden: true },
    "Load more products",
  );
  let cursor = page.next_cursor;
  let shownCount = 0;

  async function showProducts(products) {
    const cards = products.map((product) => productCard(product));
    grid.append(...cards.map((card) => card.element));
    shownCount += products.length;
    count.textContent = shownCount ? `Showing ${plural(shownCount, "product", "products")}` : "";
    more.hidden = !cursor;
    await showStock(cards, signal);
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const next = await request(
        `/api/v1/products${qs({ limit: PAGE_SIZE, q, category, sort, cursor })}`,
        { signal },
      );
      cursor = next.next_cursor;
      await showProducts(next.items);
      announce(`${plural(next.items.length, "more product", "more products")} shown`);
    } catch (error) {
      if (error.name !== "AbortError") toast(error.message, { tone: "error" });
    } finally {
      more.disabled = false;
    }
  });

  const sortSelect = h(
    "select",
    {
      id: "sort",
      name: "sort",
      onchange: () => go(`/${qs({ q, category, sort: sortSelect.value })}`),
    },
    SORTS.map(([value, label]) => h("option", { value, selected: value === sort }, label)),
  );

  view.replaceChildren(
    h("h1", {}, title),
    h(
      "div",
      { class: "catalog" },
      categoryNav(known, category, q),
      h(
        "section",
        { class: "catalog-results", "aria-label": "Products" },
        h(
          "div",
          { class: "toolbar" },
          count,
          h(
            "div",
            { class: "field field--inline" },
            h("label", { for: "sort" }, "Sort by"),
            sortSelect,
          ),
        ),
        page.items.length
          ? grid
          : h(
              "div",
              { class: "empty" },
              h("p", {}, q ? `No products match “${q}”.` : "There are no products here yet."),
              q ? h("p", {}, h("a", { href: "#/" }, "See all products")) : null,
            ),
        more,
      ),
    ),
  );
  await showProducts(page.items);
  if (q) announce(page.items.length ? `${count.textContent} for ${q}` : `No products match ${q}`);
}

function categoryNav(known, active, q) {
  const link = (slug, name, total) =>
    h(
      "li",
      {},
      h(
        "a",
        { href: `#/${qs({ category: slug, q })}`, "aria-current": slug === active ? "page" : null },
        name,
        total === undefined
          ? null
          : h(
              "span",
              { class: "category-count" },
              hidden(", "),
              String(total),
              hidden(" products"),
            ),
      ),
    );
  return h(
    "nav",
    { class: "categories", "aria-label": "Categories" },
    h(
      "ul",
      {},
      link("", "All products"),
      known.map((c) => link(c.slug, c.name, c.product_count)),
    ),
  );
}

function productCard(product) {
  const button = h(
    "button",
    {
      type: "button",
      class: "button",
      onclick: () => {
        if (!addToCart(product, 1)) {
          toast("Your cart is full. Check out or remove something first.", { tone: "error" });
          return;
        }
        toast(`Added ${product.name} to your cart.`, { href: "#/cart", linkText: "View cart" });
      },
    },
    "Add",
    hidden(` ${product.name}`),
    " to cart",
  );
  const stock = h("div", { class: "card-stock" });
  const element = h(
    "li",
    { class: "card" },
    productPicture(product),
    h("h2", { class: "card-title" }, h("a", { href: `#/products/${product.id}` }, product.name)),
    h("p", { class: "price" }, money(product.price)),
    stock,
    button,
  );
  return { product, element, stock, button };
}

// One question to inventory for the whole page; cards keep an empty stock line if it can't say.
async function showStock(cards, signal) {
  if (!cards.length) return;
  const skus = cards.map((card) => card.product.sku).join(",");
  let items = [];
  try {
    ({ items } = await request(`/api/v1/inventory/availability${qs({ skus })}`, { signal }));
  } catch (error) {
    if (error.name === "AbortError") throw error;
    return;
  }
  const bySku = new Map(items.map((item) => [item.sku, item]));
  for (const card of cards) {
    const availability = bySku.get(card.product.sku);
    if (!availability) continue;
    card.stock.replaceChildren(stockLine(availability));
    if (availability.available <= 0) {
      card.button.disabled = true;
      card.button.replaceChildren("Out of stock", hidden(`: ${card.product.name}`));
    }
  }
}
