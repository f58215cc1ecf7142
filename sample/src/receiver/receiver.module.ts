import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { WebhookIdentity } from 'nestjs-webhook-listener';
import { ReceiverKeysService } from './receiver-keys.service.js';
import { ReceiverController } from './receiver.controller.js';
import { ReceiverService } from './receiver.service.js';
import { SignatureVerifier } from './signature-verifier.service.js';

@Module({
  imports: [TypeOrmModule.forFeature([WebhookIdentity])],
  controllers: [ReceiverController],
  providers: [ReceiverService, SignatureVerifier, ReceiverKeysService],
})
export class ReceiverModule {}
