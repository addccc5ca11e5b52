import ms from "ms";
import Form from "./form";

export const dynamic = "force-dynamic";

export default function Home() {
  return (
    <main>
      <h1>{`Hello from node-nextjs: a day is ${ms("1d")} ms (Node.js ${process.versions.node.split(".")[0]})`}</h1>
      <Form />
    </main>
  );
}
