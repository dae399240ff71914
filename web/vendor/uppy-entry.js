// What the app takes from Uppy, bundled by `npm run build` (esbuild) into vendor/uppy.mjs.
export { default as Uppy } from '@uppy/core';
export { default as Dashboard } from '@uppy/dashboard';
export { default as AwsS3 } from '@uppy/aws-s3';
export { default as GoldenRetriever } from '@uppy/golden-retriever';
