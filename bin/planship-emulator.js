#!/usr/bin/env node
import process from 'node:process'
import { main } from '../dist/emulator/cli.js'

await main(process.argv.slice(2))
