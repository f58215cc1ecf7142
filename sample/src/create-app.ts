import { ConsoleLogger, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { DataSourceOptions } from 'typeorm';
import { AppModule } from './app.module.js';

export interface SampleAppOptions {
  logLevels?: LogLevel[];
}

/**
 * Creates the sample app on Express (@nestjs/platform-express). `rawBody: true` keeps each request body's bytes for the
 * receiver, which verifies signatures on exactly what was sent.
 */
export function createSampleApp(database: DataSourceOptions, options: SampleAppOptions = {}): Promise<NestExpressApplication> {
  const logger = new ConsoleLogger({ logLevels: options.logLevels, colors: colorsWanted() });
  return NestFactory.create<NestExpressApplication>(AppModule.forDatabase(database), { rawBody: true, logger, abortOnError: false });
}

export function colorsWanted(): boolean {
  return Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
}
