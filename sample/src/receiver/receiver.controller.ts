import {
  Controller,
  Get,
  Headers,
  HttpCode,
  HttpStatus,
  Post,
  RawBody,
  ServiceUnavailableException,
  UnauthorizedException,
} from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import type { ReceivedWebhook } from './received-webhook.js';
import { ReceiverService, STATE_REFUSED_ONCE } from './receiver.service.js';

/** Where the demo's listener points: a webhook receiver, as another application would run it. */
@Controller('receiver')
export class ReceiverController {
  constructor(private readonly receiver: ReceiverService) {}

  /** Signatures are computed over the exact bytes sent, so they are checked on the raw body, before any parsing. */
  @Post()
  @HttpCode(HttpStatus.OK)
  async receive(@Headers() headers: IncomingHttpHeaders, @RawBody() rawBody: Buffer | undefined): Promise<{ received: number }> {
    if (!rawBody) throw new Error('the receiver needs the raw body: create the app with { rawBody: true }');
    const received = await this.receiver.receive(headers, rawBody);
    if (received.answeredStatus === HttpStatus.UNAUTHORIZED) throw new UnauthorizedException('the signatures do not verify');
    if (received.answeredStatus === HttpStatus.SERVICE_UNAVAILABLE) {
      throw new ServiceUnavailableException(`the first ${STATE_REFUSED_ONCE} delivery is refused once, to show a retry`);
    }
    return { received: received.sequence };
  }

  /** Every request the receiver got, in arrival order, with its verification results and answer. */
  @Get('requests')
  list(): ReceivedWebhook[] {
    return this.receiver.list();
  }
}
