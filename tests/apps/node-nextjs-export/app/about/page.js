export default function About() {
  return <h1>About node-nextjs-export</h1>;
}
