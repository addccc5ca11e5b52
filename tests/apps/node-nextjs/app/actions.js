"use server";

import ms from "ms";

export async function describe(formData) {
  const span = String(formData.get("span") || "1d");
  return `${span} is ${ms(span)} ms`;
}
