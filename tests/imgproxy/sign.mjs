// Builds and signs imgproxy URLs with imgproxy's own Node client, so the transformer is tested
// against URLs it did not build itself. Input (stdin): {"key", "salt", "cases": [{"source",
// "displayAs": "plain"|"base64", "options": {...}}]}. Output (stdout): the URL paths, as JSON.
import { generateImageUrl } from "@imgproxy/imgproxy-node";

const input = JSON.parse(await new Response(process.stdin).text());
const paths = input.cases.map((c) => {
  const url = generateImageUrl({
    endpoint: "http://transformer.invalid",
    url: { value: c.source, displayAs: c.displayAs ?? "base64" },
    options: c.options,
    key: input.key,
    salt: input.salt,
  });
  // The path exactly as the client built and signed it.
  return url.slice("http://transformer.invalid".length);
});
process.stdout.write(JSON.stringify(paths));
