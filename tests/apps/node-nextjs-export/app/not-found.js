export default function NotFound() {
  return <h1>node-nextjs-export: no such page</h1>;
}
