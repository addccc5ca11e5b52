import Link from "next/link";
import ms from "ms";

export default function Home() {
  return (
    <main>
      <h1>{`Hello from node-nextjs-export: a week is ${ms("7d")} ms (exported at build time)`}</h1>
      <Link href="/about">About</Link>
    </main>
  );
}
