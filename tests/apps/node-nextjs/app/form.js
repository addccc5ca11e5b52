"use client";

import { useActionState } from "react";
import { describe } from "./actions";

export default function Form() {
  const [said, act] = useActionState(async (_, data) => describe(data), "");
  return (
    <form action={act}>
      <input name="span" defaultValue="2h" />
      <button type="submit">How many ms?</button>
      <p>{said}</p>
    </form>
  );
}
