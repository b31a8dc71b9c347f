// Express 4, installed as `express4` to test the adapter on it: the same API as far as the
// adapter goes, typed with Express 5's types (the ones we publish against).
declare module 'express4' {
  import express from 'express'
  export default express
}
